-- 0002: blobs held for mailboxes (issue 16): the sealed, padded chunks of
-- files sent to an offline owner, filed under an id only the sender and
-- the owner can compute. Their own usage and quotas, apart from envelopes.
-- A rowid table: rows of 256 KiB do not belong in a WITHOUT ROWID b-tree.
CREATE TABLE blobs (
	seq     INTEGER PRIMARY KEY,
	mailbox BLOB NOT NULL,
	id      BLOB NOT NULL,
	body    BLOB NOT NULL,
	size    INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	UNIQUE (mailbox, id)
) STRICT;
CREATE INDEX blobs_expires ON blobs (expires);

CREATE TABLE blob_usage (
	mailbox BLOB PRIMARY KEY,
	bytes   INTEGER NOT NULL,
	count   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE blob_totals (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	bytes INTEGER NOT NULL,
	count INTEGER NOT NULL
) STRICT;
INSERT INTO blob_totals (id, bytes, count) VALUES (1, 0, 0);

CREATE TRIGGER blobs_insert AFTER INSERT ON blobs BEGIN
	INSERT INTO blob_usage (mailbox, bytes, count) VALUES (new.mailbox, new.size, 1)
		ON CONFLICT (mailbox) DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1;
	UPDATE blob_totals SET bytes = bytes + new.size, count = count + 1 WHERE id = 1;
END;

CREATE TRIGGER blobs_delete AFTER DELETE ON blobs BEGIN
	UPDATE blob_usage SET bytes = bytes - old.size, count = count - 1 WHERE mailbox = old.mailbox;
	DELETE FROM blob_usage WHERE mailbox = old.mailbox AND count <= 0;
	UPDATE blob_totals SET bytes = bytes - old.size, count = count - 1 WHERE id = 1;
END;
