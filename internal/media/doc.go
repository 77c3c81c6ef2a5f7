// Package media carries attachments (DESIGN §3): a file is split into
// ChunkSize chunks, each sealed with ChaCha20-Poly1305 under a random
// per-file key (the nonce names the chunk), and every sealed chunk is
// addressed by the SHA-256 of its ciphertext. The Manifest — key, size,
// name, type, the hashes of the encrypted index and a thumbnail — is small
// and travels inside an ordinary ratchet message; the chunks travel over
// /samizdat/blob/2 (ProtocolV1 still served) from anyone who holds them, and the receiver checks
// each one against its hash before keeping it. Chunks live as files in a
// directory (they are ciphertext already), so a transfer resumes from what
// is on disk after a disconnect or a restart.
//
// The package never imports the messenger (the messenger imports it) nor
// go-libp2p (it uses internal/p2p's Stream), never logs keys, file names
// or contents, and never hand-rolls a primitive.
package media
