package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OutboxHeadDue returns when the oldest queued item of a contact is due
// (ok false: nothing queued), reading no payload: a delivery loop learns
// that a contact's queue is waiting out its backoff without loading it.
// A contact's whole queue goes in order once its oldest item is due, so
// items queued behind it (a group control to each member…) do not make
// it due; reading every payload of every such queue on every wake-up was
// quadratic in a large group (docs/BENCHMARKS.md "Scale").
func (tx *Tx) OutboxHeadDue(contactID int64) (due time.Time, ok bool, err error) {
	var next int64
	err = tx.queryRow(`SELECT next_attempt FROM outbox WHERE id = (SELECT min(id) FROM outbox WHERE contact_id = ?)`, contactID).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: outbox head: %w", err)
	}
	return fromNanos(next), true, nil
}

// RescheduleQueue sets the retry time of a contact's whole queue (one
// statement, no payload read): attempts becomes at least attempts.
func (tx *Tx) RescheduleQueue(contactID int64, attempts int, next time.Time, lastErr string) error {
	_, err := tx.exec(`UPDATE outbox SET attempts = max(attempts, ?), next_attempt = ?, last_error = ? WHERE contact_id = ?`,
		attempts, toNanos(next), lastErr, contactID)
	if err != nil {
		return fmt.Errorf("store: reschedule queue: %w", err)
	}
	return nil
}
