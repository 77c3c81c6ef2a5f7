-- 0004: broadcast channels and private groups (DESIGN §5, issue 5).
-- Times are unix nanoseconds UTC. Ids and keys are raw bytes.

-- A channel we own or follow. owner_key is the owner's Ed25519 seed when
-- the channel is ours (empty otherwise); body_key is the key of a private
-- channel (empty: public); seeds are multiaddrs of peers that serve its
-- history (from the invite), JSON.
CREATE TABLE channels (
	id        BLOB PRIMARY KEY,
	name      TEXT NOT NULL,
	owner_pub BLOB NOT NULL,
	owner_key BLOB NOT NULL DEFAULT x'',
	body_key  BLOB NOT NULL DEFAULT x'',
	seeds     TEXT NOT NULL DEFAULT '[]',
	created   INTEGER NOT NULL
) STRICT;

-- Verified posts (the full signed encoding), kept to read and to serve to
-- subscribers missing them.
CREATE TABLE channel_posts (
	channel_id BLOB NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL,
	hash       BLOB NOT NULL,
	post       BLOB NOT NULL,
	at         INTEGER NOT NULL,
	PRIMARY KEY (channel_id, seq)
) STRICT;

-- A group we belong (or belonged) to. sender is our senderkey.Sender for
-- the current epoch; gone is set once we left or were removed.
CREATE TABLE groups (
	id      BLOB PRIMARY KEY,
	secret  BLOB NOT NULL,
	name    TEXT NOT NULL,
	sender  BLOB NOT NULL DEFAULT x'',
	gone    INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL
) STRICT;

-- Signed membership operations, a hash DAG (see messenger/groupops.go).
CREATE TABLE group_ops (
	group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	hash     BLOB NOT NULL,
	op       BLOB NOT NULL,
	PRIMARY KEY (group_id, hash)
) STRICT;

-- Other members' sender keys (senderkey.Receiver), by epoch.
CREATE TABLE group_keys (
	group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	member   TEXT NOT NULL,
	epoch    INTEGER NOT NULL,
	state    BLOB NOT NULL,
	PRIMARY KEY (group_id, member, epoch)
) STRICT;

-- Group messages. raw is the encrypted message as published (served to
-- members catching up); body is empty and pending set while we lack the
-- sender key to read it.
CREATE TABLE group_messages (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	group_id BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
	msg_id   TEXT NOT NULL,
	sender   TEXT NOT NULL,
	body     TEXT NOT NULL,
	sent_at  INTEGER NOT NULL,
	at       INTEGER NOT NULL,
	pending  INTEGER NOT NULL DEFAULT 0,
	raw      BLOB NOT NULL,
	UNIQUE (group_id, msg_id)
) STRICT;
CREATE INDEX group_messages_pending ON group_messages (group_id) WHERE pending = 1;
