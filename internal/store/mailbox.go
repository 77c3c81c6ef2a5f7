package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"time"
)

// MailboxHashSize is the size of a mailbox id and of an envelope hash
// (both SHA-256).
const MailboxHashSize = 32

// mailboxApplicationID marks a mailbox database ("SZMB"), so that a profile
// database and a mailbox database are never mistaken for each other.
const mailboxApplicationID = 0x535A4D42

// mailboxSweepBatch bounds the rows one Sweep transaction deletes, so a
// large expiry does not hold the writer for long (a variable for tests).
var mailboxSweepBatch = 1000

var (
	// ErrMailboxFull is returned by MailboxStore.Deposit when the envelope
	// would take the mailbox over its quota.
	ErrMailboxFull = errors.New("store: mailbox quota full")

	// ErrStorageFull is returned by MailboxStore.Deposit when the envelope
	// would take the whole mailbox database over its quota.
	ErrStorageFull = errors.New("store: mailbox storage quota full")
)

//go:embed mailbox_migrations/*.sql
var mailboxMigrationFS embed.FS

// mailboxMigrations are the mailbox database's schema steps, read by the
// same loader as the profile's.
var mailboxMigrations = loadMigrations(renamedDir{mailboxMigrationFS, "mailbox_migrations"})

// renamedDir shows dir of fsys as "migrations", the name loadMigrations
// reads.
type renamedDir struct {
	fsys fs.FS
	dir  string
}

func (r renamedDir) Open(name string) (fs.File, error) {
	if name == "migrations" || strings.HasPrefix(name, "migrations/") {
		return r.fsys.Open(r.dir + strings.TrimPrefix(name, "migrations"))
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// MailboxStore is the durable storage of a mailbox host: opaque envelopes
// held for mailbox ids, with per-mailbox and total usage, expiry and paging.
// It is a database of its own (encrypted at rest like a profile's), never
// the profile database, so a relay's holdings and a user's data never mix.
// It is safe for concurrent use.
type MailboxStore struct {
	db *Store
}

// MailboxEnvelope is one stored envelope.
type MailboxEnvelope struct {
	Seq      int64  // cursor: increases with every deposit, never reused
	Hash     []byte // SHA-256 of Envelope
	Envelope []byte
	Expires  time.Time
}

// MailboxQuota bounds deposits. A zero field means no limit.
type MailboxQuota struct {
	PerMailbox int64 // envelope bytes per mailbox
	Total      int64 // envelope bytes in the whole database
}

// MailboxQuery selects a page of a mailbox for MailboxStore.List.
type MailboxQuery struct {
	After    int64     // return envelopes with Seq > After (0: from the start)
	Limit    int       // at most this many envelopes (must be > 0)
	MaxBytes int       // stop before exceeding this many envelope bytes (0: no limit); the first envelope is always returned
	Now      time.Time // envelopes expired at Now are skipped
}

// OpenMailboxStore opens (creating it if needed) the encrypted mailbox
// database at path with a KeySize-byte key. It returns the same errors as
// Open; a profile database (or any other samizdat file) gives
// ErrNotDatabase.
func OpenMailboxStore(path string, key []byte) (*MailboxStore, error) {
	db, err := openSchema(path, key, encryptedVFS, schema{name: "mailbox", appID: mailboxApplicationID, steps: mailboxMigrations})
	if err != nil {
		return nil, err
	}
	return &MailboxStore{db: db}, nil
}

// Close waits for running calls, then closes the database. Later calls
// return ErrClosed.
func (m *MailboxStore) Close() error { return m.db.Close() }

// clampNano is t in unix nanoseconds, saturated instead of wrapping for
// times outside 1678..2262.
func clampNano(t time.Time) int64 {
	switch {
	case t.After(maxNano):
		return math.MaxInt64
	case t.Before(minNano):
		return math.MinInt64
	}
	return t.UnixNano()
}

var (
	maxNano = time.Unix(0, math.MaxInt64)
	minNano = time.Unix(0, math.MinInt64)
)

func checkHash(what string, b []byte) error {
	if len(b) != MailboxHashSize {
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrInvalid, what, len(b), MailboxHashSize)
	}
	return nil
}

// Deposit stores envelope for mailboxID under hash (the caller's SHA-256 of
// envelope) until expires, and returns once it is committed. A hash already
// held for the mailbox is not stored again: stored is false and err nil,
// whatever the quotas (the envelope is safe already). Otherwise, if the
// envelope would exceed q, Deposit returns ErrMailboxFull or ErrStorageFull
// and stores nothing. Quotas are checked in the same transaction as the
// insert, so concurrent deposits cannot overshoot them.
func (m *MailboxStore) Deposit(ctx context.Context, mailboxID, hash, envelope []byte, expires time.Time, q MailboxQuota) (stored bool, err error) {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return false, err
	}
	if err := checkHash("envelope hash", hash); err != nil {
		return false, err
	}
	if len(envelope) == 0 {
		return false, fmt.Errorf("%w: empty envelope", ErrInvalid)
	}
	// Deposits from many depositors share commits (UpdateShared): the
	// quota checks see the deposits committed with this one.
	err = m.db.UpdateShared(ctx, func(tx *Tx) (err error) {
		stored, err = depositTx(tx, mailboxID, hash, envelope, expires, q)
		return err
	})
	if err != nil {
		return false, err
	}
	return stored, nil
}

// depositTx is one deposit inside tx (see Deposit). A refusal
// (ErrMailboxFull, ErrStorageFull) writes nothing.
func depositTx(tx *Tx, mailboxID, hash, envelope []byte, expires time.Time, q MailboxQuota) (bool, error) {
	size := int64(len(envelope))
	// One statement for the duplicate check and both quotas (a
	// statement's fixed cost is much of a deposit's).
	var dup, used, total sql.NullInt64
	err := tx.queryRow(`SELECT (SELECT 1 FROM envelopes WHERE mailbox = ?1 AND hash = ?2),
		(SELECT bytes FROM usage WHERE mailbox = ?1), (SELECT bytes FROM totals WHERE id = 1)`,
		mailboxID, hash).Scan(&dup, &used, &total)
	if err != nil {
		return false, fmt.Errorf("store: mailbox deposit: %w", err)
	}
	if dup.Valid {
		return false, nil // a duplicate
	}
	if q.PerMailbox > 0 && used.Int64+size > q.PerMailbox {
		return false, ErrMailboxFull
	}
	if q.Total > 0 && total.Int64+size > q.Total {
		return false, ErrStorageFull
	}
	if _, err := tx.exec(`INSERT INTO envelopes (mailbox, hash, body, size, expires) VALUES (?, ?, ?, ?, ?)`,
		mailboxID, hash, envelope, size, clampNano(expires)); err != nil {
		return false, fmt.Errorf("store: mailbox deposit: %w", err)
	}
	return true, nil
}

// Usage returns the envelope bytes and count held for mailboxID (expired
// envelopes count until swept).
func (m *MailboxStore) Usage(ctx context.Context, mailboxID []byte) (bytes, count int64, err error) {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return 0, 0, err
	}
	err = m.db.View(ctx, func(tx *Tx) error {
		err := tx.queryRow(`SELECT bytes, count FROM usage WHERE mailbox = ?`, mailboxID).Scan(&bytes, &count)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: mailbox usage: %w", err)
	}
	return bytes, count, nil
}

// TotalUsage returns the envelope bytes and count held for all mailboxes.
func (m *MailboxStore) TotalUsage(ctx context.Context) (bytes, count int64, err error) {
	err = m.db.View(ctx, func(tx *Tx) error {
		return tx.queryRow(`SELECT bytes, count FROM totals WHERE id = 1`).Scan(&bytes, &count)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: mailbox usage: %w", err)
	}
	return bytes, count, nil
}

// List returns a page of mailboxID's envelopes, oldest first (see
// MailboxQuery), and whether more follow it. Page on with After set to the
// last Seq returned.
func (m *MailboxStore) List(ctx context.Context, mailboxID []byte, q MailboxQuery) (page []MailboxEnvelope, more bool, err error) {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return nil, false, err
	}
	if q.Limit <= 0 {
		return nil, false, fmt.Errorf("%w: list limit %d", ErrInvalid, q.Limit)
	}
	var out []MailboxEnvelope
	err = m.db.View(ctx, func(tx *Tx) error {
		out, more = out[:0], false
		// One row more than asked tells whether more follow.
		rows, err := tx.query(`SELECT seq, hash, body, expires FROM envelopes
			WHERE mailbox = ? AND seq > ? AND expires > ? ORDER BY seq LIMIT ?`,
			mailboxID, q.After, clampNano(q.Now), q.Limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		total := 0
		for rows.Next() {
			if len(out) == q.Limit {
				more = true
				break
			}
			var e MailboxEnvelope
			var exp int64
			if err := rows.Scan(&e.Seq, &e.Hash, &e.Envelope, &exp); err != nil {
				return err
			}
			if q.MaxBytes > 0 && len(out) > 0 && total+len(e.Envelope) > q.MaxBytes {
				more = true
				break
			}
			total += len(e.Envelope)
			e.Expires = time.Unix(0, exp).UTC()
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: mailbox list: %w", err)
	}
	return out, more, nil
}

// deleteKeyed runs query (a DELETE taking the mailbox id and one key) for
// each of keys in one share of a group commit, and returns how many rows
// it deleted.
func (m *MailboxStore) deleteKeyed(ctx context.Context, query string, mailboxID []byte, keys [][]byte) (int, error) {
	n := 0
	err := m.db.UpdateShared(ctx, func(tx *Tx) error {
		n = 0
		for _, k := range keys {
			res, err := tx.exec(query, mailboxID, k)
			if err != nil {
				return err
			}
			d, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += int(d)
		}
		return nil
	})
	return n, err
}

// Delete deletes mailboxID's envelopes with the given hashes and returns how
// many it deleted; unknown hashes are skipped.
func (m *MailboxStore) Delete(ctx context.Context, mailboxID []byte, hashes [][]byte) (int, error) {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return 0, err
	}
	for _, h := range hashes {
		if err := checkHash("envelope hash", h); err != nil {
			return 0, err
		}
	}
	n, err := m.deleteKeyed(ctx, `DELETE FROM envelopes WHERE mailbox = ? AND hash = ?`, mailboxID, hashes)
	if err != nil {
		return 0, fmt.Errorf("store: mailbox delete: %w", err)
	}
	return n, nil
}

// Sweep deletes every envelope expired at now and returns how many, in
// transactions of at most mailboxSweepBatch rows.
func (m *MailboxStore) Sweep(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var k int64
		err := m.db.Update(ctx, func(tx *Tx) error {
			res, err := tx.exec(`DELETE FROM envelopes WHERE seq IN
				(SELECT seq FROM envelopes WHERE expires <= ? ORDER BY expires LIMIT ?)`, clampNano(now), mailboxSweepBatch)
			if err != nil {
				return err
			}
			k, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("store: mailbox sweep: %w", err)
		}
		total += int(k)
		if k < int64(mailboxSweepBatch) {
			return total, nil
		}
	}
}

// GroupStats returns how many shared transactions the mailbox store has
// committed for deposits and deletes, and how many calls they carried.
func (m *MailboxStore) GroupStats() (txs, calls int64) { return m.db.GroupStats() }
