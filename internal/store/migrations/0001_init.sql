-- 0001: the first samizdat schema.
-- Times are unix nanoseconds UTC (0 = unset). Booleans are 0/1.

-- Small named values: identity keys, prekeys, settings.
CREATE TABLE blobs (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;

CREATE TABLE contacts (
	id         INTEGER PRIMARY KEY,
	account_id TEXT NOT NULL UNIQUE,
	name       TEXT NOT NULL,
	name_key   TEXT NOT NULL UNIQUE, -- NFC + Unicode case fold of name
	card       BLOB NOT NULL,
	peer_id    TEXT NOT NULL DEFAULT '',
	addrs      TEXT NOT NULL DEFAULT '[]', -- JSON array of multiaddrs
	verified   INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL
) STRICT;
CREATE INDEX contacts_peer ON contacts (peer_id);

-- Opaque double-ratchet state, one per contact.
CREATE TABLE sessions (
	contact_id INTEGER PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
	state      BLOB NOT NULL
) STRICT;

-- seq is AUTOINCREMENT so it is never reused: callers page with afterSeq.
CREATE TABLE messages (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
	outgoing   INTEGER NOT NULL,
	msg_id     TEXT NOT NULL,
	body       TEXT NOT NULL,
	sent_at    INTEGER NOT NULL,
	at         INTEGER NOT NULL,
	state      TEXT NOT NULL,
	UNIQUE (contact_id, outgoing, msg_id)
) STRICT;
CREATE INDEX messages_contact_seq ON messages (contact_id, seq);
CREATE INDEX messages_outgoing_state ON messages (state) WHERE outgoing = 1;

-- Full-text index over bodies (external content: the text is stored once).
CREATE VIRTUAL TABLE messages_fts USING fts5 (
	body,
	content = 'messages',
	content_rowid = 'seq',
	tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
	INSERT INTO messages_fts (rowid, body) VALUES (new.seq, new.body);
END;
CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.seq, old.body);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF body ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.seq, old.body);
	INSERT INTO messages_fts (rowid, body) VALUES (new.seq, new.body);
END;

-- Durable outbox; id is the enqueue order.
CREATE TABLE outbox (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	contact_id   INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
	message_id   TEXT NOT NULL,
	payload      BLOB NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	UNIQUE (contact_id, message_id)
) STRICT;
CREATE INDEX outbox_due ON outbox (next_attempt);
