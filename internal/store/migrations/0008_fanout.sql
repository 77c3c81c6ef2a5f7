-- 0008: fan-out to every device of an account (issue 17). A contact's
-- double-ratchet sessions are kept per device (peer id): a contact with
-- two linked devices has two independent session records. The single
-- record a contact had goes to the device it was talking to (the
-- contact's peer id). Sessions with our own other devices (sent copies)
-- have contact_id 0 and no contact row, so no foreign key here: deleting a
-- contact deletes its sessions by trigger.
CREATE TABLE device_sessions (
	contact_id INTEGER NOT NULL,
	peer_id    TEXT NOT NULL,
	state      BLOB NOT NULL,
	PRIMARY KEY (contact_id, peer_id)
) STRICT;
INSERT INTO device_sessions (contact_id, peer_id, state)
	SELECT s.contact_id, c.peer_id, s.state FROM sessions s JOIN contacts c ON c.id = s.contact_id;
DROP TABLE sessions;
-- The newest card each device of a contact sent us itself (it lists that
-- device first, with its own prekeys and mailbox hosts): what a copy for a
-- device that is offline is sealed with and deposited by.
CREATE TABLE device_cards (
	contact_id INTEGER NOT NULL,
	peer_id    TEXT NOT NULL,
	card       BLOB NOT NULL,
	PRIMARY KEY (contact_id, peer_id)
) STRICT;
CREATE TRIGGER contacts_device_sessions_ad AFTER DELETE ON contacts BEGIN
	DELETE FROM device_sessions WHERE contact_id = old.id;
	DELETE FROM device_cards WHERE contact_id = old.id;
END;

-- Copies of a message for the devices other than the contact's primary
-- one (the contact's peer id, served by the outbox), and sent copies for
-- our own other devices (own = 1). payload is the plaintext payload
-- (wirepb.Payload): it is encrypted at each attempt on that device's own
-- session, which may not exist before the device is first reached (its
-- prekeys are claimed from it then). Delivered, per device, when that
-- device acks; one device's ack never removes another's copy.
CREATE TABLE device_outbox (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	contact_id   INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
	peer_id      TEXT NOT NULL,
	own          INTEGER NOT NULL DEFAULT 0,
	message_id   TEXT NOT NULL,
	payload      BLOB NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT NOT NULL DEFAULT '',
	UNIQUE (peer_id, contact_id, message_id)
) STRICT;
CREATE INDEX device_outbox_due ON device_outbox (next_attempt);
