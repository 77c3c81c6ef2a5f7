-- 0009 (devsync, issue 17; meant as 0010 at merge): sync between the
-- devices of one account. Changes for our own other devices ride the
-- device outbox as sent copies do, under contact_id 0 (our own account,
-- no contact row), so the outbox loses its foreign key; a trigger still
-- drops a deleted contact's copies.
CREATE TABLE device_outbox_new (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	contact_id   INTEGER NOT NULL,
	peer_id      TEXT NOT NULL,
	own          INTEGER NOT NULL DEFAULT 0,
	message_id   TEXT NOT NULL,
	payload      BLOB NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	UNIQUE (peer_id, contact_id, message_id)
) STRICT;
INSERT INTO device_outbox_new (id, contact_id, peer_id, own, message_id, payload, attempts, next_attempt, last_error)
	SELECT id, contact_id, peer_id, own, message_id, payload, attempts, next_attempt, last_error FROM device_outbox;
DROP TABLE device_outbox;
ALTER TABLE device_outbox_new RENAME TO device_outbox;
CREATE INDEX device_outbox_due ON device_outbox (next_attempt);
CREATE TRIGGER contacts_device_outbox_ad AFTER DELETE ON contacts BEGIN
	DELETE FROM device_outbox WHERE contact_id = old.id;
END;

-- The newest change applied to each synced item (kind/key, e.g.
-- "contact/<account id>"): when it was made and on which device, so
-- that an older change arriving late is not applied over it.
CREATE TABLE sync_clock (
	item   TEXT PRIMARY KEY,
	at     INTEGER NOT NULL,
	origin TEXT NOT NULL
) STRICT;
