-- Display order per sender (issue 13). A message that arrives after
-- messages its sender wrote later (a retry, another path, a history fetch)
-- is shown before them: ord is its display key, set only for such a
-- message; every other message is shown at its arrival (seq). The display
-- key is coalesce(ord, seq), compared within one conversation or group.
ALTER TABLE messages ADD COLUMN ord REAL;
CREATE INDEX messages_contact_ord ON messages (contact_id, ord) WHERE ord IS NOT NULL;
CREATE INDEX messages_sender_sent ON messages (contact_id, sent_at) WHERE outgoing = 0;
ALTER TABLE group_messages ADD COLUMN ord REAL;
CREATE INDEX group_messages_ord ON group_messages (group_id, ord) WHERE ord IS NOT NULL;
CREATE INDEX group_messages_sender_sent ON group_messages (group_id, sender, sent_at);
