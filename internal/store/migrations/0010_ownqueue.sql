-- 0010 (ownqueue, issue 17): when a device copy was queued, so that a
-- copy with no message of its own (a change for our other devices, a
-- card update, a group control, an ack) is given up after GiveUpAfter
-- like a sent copy. Rows from before take their next attempt.
ALTER TABLE device_outbox ADD COLUMN queued_at INTEGER NOT NULL DEFAULT 0;
UPDATE device_outbox SET queued_at = next_attempt;
