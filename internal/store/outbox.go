package store

import (
	"fmt"
	"time"
)

// OutboxItem is an encrypted envelope waiting to be sent.
type OutboxItem struct {
	MessageID   string
	ContactID   int64
	Payload     []byte // opaque encrypted envelope
	Attempts    int
	NextAttempt time.Time // zero: due now
	LastError   string
}

const outboxColumns = `message_id, contact_id, payload, attempts, next_attempt, last_error`

// Enqueue adds it to the outbox. It returns ErrExists if (ContactID,
// MessageID) is already queued and ErrNotFound (wrapped) if the contact does
// not exist.
func (tx *Tx) Enqueue(it OutboxItem) error {
	if it.MessageID == "" {
		return fmt.Errorf("%w: outbox item without message id", ErrInvalid)
	}
	_, err := tx.exec(`INSERT INTO outbox (`+outboxColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		it.MessageID, it.ContactID, nonNil(it.Payload), it.Attempts, toNanos(it.NextAttempt), it.LastError)
	switch {
	case isUnique(err):
		return fmt.Errorf("outbox item: %w", ErrExists)
	case isForeignKey(err):
		return fmt.Errorf("contact %d: %w", it.ContactID, ErrNotFound)
	case err != nil:
		return fmt.Errorf("store: enqueue: %w", err)
	}
	return nil
}

// Outbox returns the queued items of a contact in enqueue order.
func (tx *Tx) Outbox(contactID int64) ([]OutboxItem, error) {
	return tx.outbox(`SELECT `+outboxColumns+` FROM outbox WHERE contact_id = ? ORDER BY id`, contactID)
}

// DueOutbox returns up to limit items (limit <= 0: all) whose NextAttempt is
// not after now, in enqueue order.
func (tx *Tx) DueOutbox(now time.Time, limit int) ([]OutboxItem, error) {
	if limit <= 0 {
		limit = -1
	}
	return tx.outbox(`SELECT `+outboxColumns+` FROM outbox WHERE next_attempt <= ? ORDER BY id LIMIT ?`,
		toNanos(now), limit)
}

// RescheduleOutbox records a failed attempt: the new attempt count, the
// next attempt time and the last error. It returns ErrNotFound if the item
// is not queued.
func (tx *Tx) RescheduleOutbox(messageID string, contactID int64, attempts int, next time.Time, lastErr string) error {
	res, err := tx.exec(`UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ?
		WHERE contact_id = ? AND message_id = ?`, attempts, toNanos(next), lastErr, contactID, messageID)
	if err != nil {
		return fmt.Errorf("store: reschedule: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: reschedule: %w", err)
	} else if n == 0 {
		return fmt.Errorf("outbox item: %w", ErrNotFound)
	}
	return nil
}

// DeleteOutbox removes an item from the outbox. Deleting an item that is not
// there is not an error, so a repeated ack is harmless.
func (tx *Tx) DeleteOutbox(contactID int64, messageID string) error {
	if _, err := tx.exec(`DELETE FROM outbox WHERE contact_id = ? AND message_id = ?`, contactID, messageID); err != nil {
		return fmt.Errorf("store: delete outbox: %w", err)
	}
	return nil
}

func (tx *Tx) outbox(query string, args ...any) ([]OutboxItem, error) {
	rows, err := tx.query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		var (
			it   OutboxItem
			next int64
		)
		if err := rows.Scan(&it.MessageID, &it.ContactID, &it.Payload, &it.Attempts, &next, &it.LastError); err != nil {
			return nil, fmt.Errorf("store: outbox: %w", err)
		}
		it.NextAttempt = fromNanos(next)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	return out, nil
}
