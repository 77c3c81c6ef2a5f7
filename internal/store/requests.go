package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Pending contact requests (issue 14) are contacts rows with Request set:
// a stranger's session, messages and receipts live where a contact's do,
// and Contacts, Chats and Search leave them out until they are accepted.

// Requests returns the pending requests, oldest first.
func (tx *Tx) Requests() ([]Contact, error) {
	return tx.contacts(`SELECT ` + contactColumns + ` FROM contacts WHERE request != 0 ORDER BY request, id`)
}

// RequestSize is what one pending request holds: its messages and its
// bytes (card, message bodies and blobs named by the caller's prefix).
type RequestSize struct {
	ID       int64
	Messages int
	Bytes    int64
}

// RequestSizes returns the size of every pending request, oldest first.
// blobPrefix(id) names the blobs counted with request id (for example the
// attachment manifests kept until it is accepted): every blob whose name
// starts with it.
func (tx *Tx) RequestSizes(blobPrefix func(id int64) string) ([]RequestSize, error) {
	rows, err := tx.query(`SELECT c.id, length(c.card),
		(SELECT count(*) FROM messages m WHERE m.contact_id = c.id),
		(SELECT coalesce(sum(length(CAST(m.body AS BLOB))), 0) FROM messages m WHERE m.contact_id = c.id)
		FROM contacts c WHERE c.request != 0 ORDER BY c.request, c.id`)
	if err != nil {
		return nil, fmt.Errorf("store: request sizes: %w", err)
	}
	var out []RequestSize
	for rows.Next() {
		var r RequestSize
		var card, body int64
		if err := rows.Scan(&r.ID, &card, &r.Messages, &body); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: request sizes: %w", err)
		}
		r.Bytes = card + body
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: request sizes: %w", err)
	}
	for i := range out {
		p := blobPrefix(out[i].ID)
		var n int64
		err := tx.queryRow(`SELECT coalesce(sum(length(value)), 0) FROM blobs
			WHERE name >= ? AND name < ?`, p, p+"\xff").Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("store: request sizes: %w", err)
		}
		out[i].Bytes += n
	}
	return out, nil
}

// DeleteContact deletes a contact (or a pending request) with everything
// that is its: session, messages, receipts, outbox. It returns ErrNotFound
// if there is none.
func (tx *Tx) DeleteContact(id int64) error {
	res, err := tx.exec(`DELETE FROM contacts WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("store: delete contact: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: delete contact: %w", err)
	} else if n == 0 {
		return fmt.Errorf("contact %d: %w", id, ErrNotFound)
	}
	return nil
}

// BlobNames returns the names of the blobs that start with prefix.
func (tx *Tx) BlobNames(prefix string) ([]string, error) {
	rows, err := tx.query(`SELECT name FROM blobs WHERE name >= ? AND name < ? ORDER BY name`, prefix, prefix+"\xff")
	if err != nil {
		return nil, fmt.Errorf("store: blob names: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: blob names: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: blob names: %w", err)
	}
	return out, nil
}

// DeleteBlob deletes the blob name (nothing if there is none).
func (tx *Tx) DeleteBlob(name string) error {
	if _, err := tx.exec(`DELETE FROM blobs WHERE name = ?`, name); err != nil {
		return fmt.Errorf("store: delete blob: %w", err)
	}
	return nil
}

// Block refuses an account until the given time (a declined request);
// blocks that have run out by now are forgotten on the way.
func (tx *Tx) Block(accountID string, until, now time.Time) error {
	if _, err := tx.exec(`DELETE FROM blocked WHERE until <= ?`, toNanos(now)); err != nil {
		return fmt.Errorf("store: block: %w", err)
	}
	_, err := tx.exec(`INSERT INTO blocked (account_id, until) VALUES (?, ?)
		ON CONFLICT (account_id) DO UPDATE SET until = excluded.until`, accountID, toNanos(until))
	if err != nil {
		return fmt.Errorf("store: block: %w", err)
	}
	return nil
}

// Blocked reports whether an account is refused at now.
func (tx *Tx) Blocked(accountID string, now time.Time) (bool, error) {
	var until int64
	err := tx.queryRow(`SELECT until FROM blocked WHERE account_id = ?`, accountID).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: blocked: %w", err)
	}
	return until > toNanos(now), nil
}
