-- 0005 (branch mesh): what a mesh carrier carries for others (docs/MESH.md),
-- so that a carrier that restarts still carries it. An envelope or a
-- receipt, as the mesh holds it: opaque sealed bytes, the recipient's
-- mailbox id, the hops it may still travel, its expiry (unix seconds), the
-- order it arrived in and the neighbour it came from (for the per-neighbour
-- shares), and the peer ids of the recipient's mailbox hosts.
CREATE TABLE mesh_carried (
	id           BLOB PRIMARY KEY,
	mailbox      BLOB NOT NULL,
	hops         INTEGER NOT NULL,
	expires      INTEGER NOT NULL,
	arrived      INTEGER NOT NULL,
	from_peer    TEXT NOT NULL,
	hosts        TEXT NOT NULL,
	envelope     BLOB,
	receipt_hash BLOB,
	receipt_key  BLOB,
	receipt_sig  BLOB
) STRICT;
