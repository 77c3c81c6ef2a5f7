-- 0003: the receipt of each received message: a hash of the envelope it came
-- in and the encrypted ack sent back. A duplicate of that exact envelope is
-- answered with the same ack bytes, so that duplicates never advance the
-- ratchet (a stream of them would otherwise push the peer's receiving chain
-- past its skip bound), and a forged envelope reusing a known id is told
-- apart from a true duplicate.
CREATE TABLE receipts (
	seq      INTEGER PRIMARY KEY REFERENCES messages (seq) ON DELETE CASCADE,
	env_hash BLOB NOT NULL,
	ack      BLOB NOT NULL
) STRICT;
