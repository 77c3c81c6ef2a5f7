-- 0007: first contact from strangers (issue 14). A stranger's first message
-- makes a pending request, not a contact: a contacts row with request set
-- (unix nanoseconds when it arrived; 0 = an accepted contact), so that its
-- session, messages and receipts work as any contact's, while contact
-- lists, chats and search leave it out until the user accepts it.
-- Declined accounts are refused until `until` (unix nanoseconds).
ALTER TABLE contacts ADD COLUMN request INTEGER NOT NULL DEFAULT 0;
CREATE INDEX contacts_request ON contacts (request) WHERE request != 0;
CREATE TABLE blocked (
	account_id TEXT PRIMARY KEY,
	until      INTEGER NOT NULL
) STRICT;
