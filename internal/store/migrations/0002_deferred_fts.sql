-- 0002: index message bodies in batches instead of one insert at a time.
-- Indexing on every insert made FTS5 write a new segment per transaction,
-- the largest share of the cost of storing a message. Rows with
-- seq <= fts_state.indexed_seq are in messages_fts; IndexPending adds the
-- rest. The delete/update triggers touch the index only for indexed rows
-- (an FTS5 'delete' of a row it never saw would corrupt it).
CREATE TABLE fts_state (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	indexed_seq INTEGER NOT NULL
) STRICT;
INSERT INTO fts_state (id, indexed_seq) VALUES (1, (SELECT coalesce(max(seq), 0) FROM messages));

DROP TRIGGER messages_fts_ai;
DROP TRIGGER messages_fts_ad;
DROP TRIGGER messages_fts_au;
CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages
WHEN old.seq <= (SELECT indexed_seq FROM fts_state WHERE id = 1) BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.seq, old.body);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF body ON messages
WHEN old.seq <= (SELECT indexed_seq FROM fts_state WHERE id = 1) BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.seq, old.body);
	INSERT INTO messages_fts (rowid, body) VALUES (new.seq, new.body);
END;
