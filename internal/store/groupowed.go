package store

import "fmt"

// Sender keys owed to group members we could not reach when we made or
// learnt of them (groups added by ADD_MANY ops carry no cards): the
// distribution of our key as it stood then, sent once they are reachable.
// Kept in the blobs table, so no migration: one small row per member owed.

func owedName(groupID []byte, member string) string {
	return fmt.Sprintf("grpowed/%x/%s", groupID, member)
}

// GroupOwedKey returns the sender key we owe member of a group, or
// ErrNotFound.
func (tx *Tx) GroupOwedKey(groupID []byte, member string) ([]byte, error) {
	return tx.Blob(owedName(groupID, member))
}

// PutGroupOwedKey records (replaces) the sender key we owe member.
func (tx *Tx) PutGroupOwedKey(groupID []byte, member string, dist []byte) error {
	return tx.PutBlob(owedName(groupID, member), dist)
}

// DeleteGroupOwedKey forgets the sender key owed to member.
func (tx *Tx) DeleteGroupOwedKey(groupID []byte, member string) error {
	if _, err := tx.exec(`DELETE FROM blobs WHERE name = ?`, owedName(groupID, member)); err != nil {
		return fmt.Errorf("store: delete owed group key: %w", err)
	}
	return nil
}
