// Package store is samizdat's local database: identity and settings blobs,
// contacts, ratchet sessions, messages (with full-text search) and the durable
// outbox, in one SQLite file encrypted at rest.
//
// The database is github.com/ncruces/go-sqlite3 (pure Go, no cgo) behind the
// "adiantum" VFS, so the main file, its WAL and any journal hold only
// ciphertext; the 32-byte key comes from the caller (see [DeriveKey]). A
// thin VFS above it (walvfs.go) lays the WAL out in whole cipher blocks, so
// a commit encrypts and writes each block once instead of read-modify-
// writing the blocks every frame straddles. The
// schema lives in numbered, embedded migrations (migrations/NNNN_*.sql)
// applied in a transaction and tracked by PRAGMA user_version; the file carries
// a samizdat application_id.
//
// All access goes through [Store.Update] (one serialized write transaction),
// [Store.UpdateShared] (a write that may share its transaction and commit
// with concurrent ones: group commit) and [Store.View] (concurrent
// read-only snapshots); a [Tx] is valid only
// inside the callback that received it.
//
// This package is the only one in samizdat that writes SQL. It must never
// write plaintext to disk (no unencrypted database, temp file or export), log
// or return in an error message a key, a message body or other user content,
// or keep global state: everything belongs to the *Store returned by [Open].
package store
