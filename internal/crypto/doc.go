// Package crypto is the root of samizdat's cryptographic core. It holds no code
// itself; the protocols live in its sub-packages:
//
//   - keys: account identity keys (Ed25519 + signed X25519) and safety numbers.
//   - handshake: PQXDH-style session establishment (X25519 + ML-KEM-768).
//   - ratchet: the Double Ratchet with header encryption for 1:1 sessions.
//   - senderkey: Signal-style sender keys for groups.
//   - channel: signed, hash-chained broadcast channel posts.
//
// Every package under crypto is a leaf: no I/O, no goroutines, no logging, no
// mutable globals. Randomness is always an io.Reader parameter so that the
// test vectors in each package's testdata directory can be regenerated from a
// fixed seed. Primitives come only from the Go standard library and
// golang.org/x/crypto; nothing here implements a primitive itself.
package crypto
