-- 0001: the mailbox host's schema. A mailbox database is a file of its own,
-- apart from any profile, with its own application_id ("SZMB").
-- Times are unix nanoseconds UTC. mailbox and hash are 32-byte SHA-256 values.

-- Envelopes held for mailboxes. seq is AUTOINCREMENT so it is never reused:
-- clients page with a cursor (the last seq they saw).
CREATE TABLE envelopes (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	mailbox BLOB NOT NULL,
	hash    BLOB NOT NULL,
	body    BLOB NOT NULL,
	size    INTEGER NOT NULL, -- length(body), kept so triggers need not read it
	expires INTEGER NOT NULL,
	UNIQUE (mailbox, hash)
) STRICT;
CREATE INDEX envelopes_mailbox ON envelopes (mailbox, seq);
CREATE INDEX envelopes_expires ON envelopes (expires);

-- Bytes and envelopes per mailbox and in total, kept by the triggers below
-- so that a quota check costs one lookup whatever the mailbox holds.
CREATE TABLE usage (
	mailbox BLOB PRIMARY KEY,
	bytes   INTEGER NOT NULL,
	count   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE totals (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	bytes INTEGER NOT NULL,
	count INTEGER NOT NULL
) STRICT;
INSERT INTO totals (id, bytes, count) VALUES (1, 0, 0);

CREATE TRIGGER envelopes_insert AFTER INSERT ON envelopes BEGIN
	INSERT INTO usage (mailbox, bytes, count) VALUES (new.mailbox, new.size, 1)
		ON CONFLICT (mailbox) DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1;
	UPDATE totals SET bytes = bytes + new.size, count = count + 1 WHERE id = 1;
END;

CREATE TRIGGER envelopes_delete AFTER DELETE ON envelopes BEGIN
	UPDATE usage SET bytes = bytes - old.size, count = count - 1 WHERE mailbox = old.mailbox;
	DELETE FROM usage WHERE mailbox = old.mailbox AND count <= 0;
	UPDATE totals SET bytes = bytes - old.size, count = count - 1 WHERE id = 1;
END;
