package store

import (
	"fmt"
	"time"
)

// DueContacts returns the contacts that have at least one outbox item due
// at now, in the order of their oldest due item. It reads no payloads, so
// a delivery loop can poll it cheaply.
func (tx *Tx) DueContacts(now time.Time) ([]int64, error) {
	// By the due index: grouping by contact would otherwise walk the
	// (contact_id, message_id) index over the whole outbox, reading every
	// row, on every poll (quadratic in a large group's fan-out).
	rows, err := tx.query(`SELECT contact_id FROM outbox INDEXED BY outbox_due WHERE next_attempt <= ?
		GROUP BY contact_id ORDER BY min(id)`, toNanos(now))
	if err != nil {
		return nil, fmt.Errorf("store: due contacts: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: due contacts: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// DueOutboxFor returns up to limit items of one contact that are due at
// now, in enqueue order.
func (tx *Tx) DueOutboxFor(contactID int64, now time.Time, limit int) ([]OutboxItem, error) {
	if limit <= 0 {
		limit = -1
	}
	return tx.outbox(`SELECT `+outboxColumns+` FROM outbox WHERE contact_id = ? AND next_attempt <= ? ORDER BY id LIMIT ?`,
		contactID, toNanos(now), limit)
}
