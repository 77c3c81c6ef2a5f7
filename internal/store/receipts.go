package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// PutReceipt records, for a received message, the hash of the envelope it
// arrived in and the ack sent back, replacing any earlier receipt. It
// returns ErrNotFound if there is no such incoming message.
func (tx *Tx) PutReceipt(contactID int64, msgID string, envHash, ack []byte) error {
	res, err := tx.exec(`INSERT INTO receipts (seq, env_hash, ack)
		SELECT seq, ?, ? FROM messages WHERE contact_id = ? AND outgoing = 0 AND msg_id = ?
		ON CONFLICT (seq) DO UPDATE SET env_hash = excluded.env_hash, ack = excluded.ack`,
		nonNil(envHash), nonNil(ack), contactID, msgID)
	if err != nil {
		return fmt.Errorf("store: put receipt: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: put receipt: %w", err)
	} else if n == 0 {
		return fmt.Errorf("message: %w", ErrNotFound)
	}
	return nil
}

// Receipt returns what PutReceipt stored for a received message, or
// ErrNotFound.
func (tx *Tx) Receipt(contactID int64, msgID string) (envHash, ack []byte, err error) {
	// A subquery, not a join: the planner must start from the message's
	// unique index, not scan receipts.
	err = tx.queryRow(`SELECT env_hash, ack FROM receipts WHERE seq =
		(SELECT seq FROM messages WHERE contact_id = ? AND outgoing = 0 AND msg_id = ?)`, contactID, msgID).Scan(&envHash, &ack)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("receipt: %w", ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: receipt: %w", err)
	}
	return envHash, ack, nil
}
