package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Fan-out (issue 17): sessions and queued copies per device of an account.
// ContactID 0 with Own set stands for our own account (sent copies to our
// other devices); it has no contacts row.

// DeviceSession returns the ratchet state kept for one device (peer id) of
// a contact (0: our own account), or ErrNotFound.
func (tx *Tx) DeviceSession(contactID int64, peer string) ([]byte, error) {
	var v []byte
	err := tx.queryRow(`SELECT state FROM device_sessions WHERE contact_id = ? AND peer_id = ?`, contactID, peer).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("session of device %s: %w", peer, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: device session: %w", err)
	}
	return nonNil(v), nil
}

// PutDeviceSession stores (replaces) the ratchet state of one device of a
// contact (0: our own account).
func (tx *Tx) PutDeviceSession(contactID int64, peer string, state []byte) error {
	_, err := tx.exec(`INSERT INTO device_sessions (contact_id, peer_id, state) VALUES (?, ?, ?)
		ON CONFLICT (contact_id, peer_id) DO UPDATE SET state = excluded.state`, contactID, peer, nonNil(state))
	if err != nil {
		return fmt.Errorf("store: put device session: %w", err)
	}
	return nil
}

// DeviceSessionPeers lists the devices of a contact (0: our own account)
// that have a session, the primary one included.
func (tx *Tx) DeviceSessionPeers(contactID int64) ([]string, error) {
	rows, err := tx.query(`SELECT peer_id FROM device_sessions WHERE contact_id = ? ORDER BY peer_id`, contactID)
	if err != nil {
		return nil, fmt.Errorf("store: device sessions: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("store: device sessions: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeleteDeviceSession forgets the session with a device (revoked).
func (tx *Tx) DeleteDeviceSession(contactID int64, peer string) error {
	if _, err := tx.exec(`DELETE FROM device_sessions WHERE contact_id = ? AND peer_id = ?`, contactID, peer); err != nil {
		return fmt.Errorf("store: delete device session: %w", err)
	}
	return nil
}

// DeviceCard returns the card device peer of a contact (0: our own
// account) last sent us itself, or ErrNotFound.
func (tx *Tx) DeviceCard(contactID int64, peer string) ([]byte, error) {
	var v []byte
	err := tx.queryRow(`SELECT card FROM device_cards WHERE contact_id = ? AND peer_id = ?`, contactID, peer).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("card of device %s: %w", peer, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: device card: %w", err)
	}
	return nonNil(v), nil
}

// PutDeviceCard stores (replaces) a device's own card.
func (tx *Tx) PutDeviceCard(contactID int64, peer string, card []byte) error {
	_, err := tx.exec(`INSERT INTO device_cards (contact_id, peer_id, card) VALUES (?, ?, ?)
		ON CONFLICT (contact_id, peer_id) DO UPDATE SET card = excluded.card`, contactID, peer, nonNil(card))
	if err != nil {
		return fmt.Errorf("store: put device card: %w", err)
	}
	return nil
}

// DeviceItem is a message's copy queued for one device: a device of the
// contact other than its primary one, or (Own) one of our own other
// devices, as the sent copy of a message to the contact. Payload is the
// plaintext payload, encrypted at each attempt. Queued is when it was
// queued (zero on EnqueueDevice: NextAttempt).
type DeviceItem struct {
	ContactID   int64
	PeerID      string
	Own         bool
	MessageID   string
	Payload     []byte
	Attempts    int
	NextAttempt time.Time
	LastError   string
	Queued      time.Time
}

const deviceItemColumns = `contact_id, peer_id, own, message_id, payload, attempts, next_attempt, last_error, queued_at`

// EnqueueDevice queues a copy for one device. A copy already queued for
// that device and message is left as it is (nil).
func (tx *Tx) EnqueueDevice(it DeviceItem) error {
	if it.MessageID == "" || it.PeerID == "" {
		return fmt.Errorf("%w: device copy without message or device", ErrInvalid)
	}
	queued := it.Queued
	if queued.IsZero() {
		queued = it.NextAttempt
	}
	_, err := tx.exec(`INSERT INTO device_outbox (`+deviceItemColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (peer_id, contact_id, message_id) DO NOTHING`,
		it.ContactID, it.PeerID, it.Own, it.MessageID, nonNil(it.Payload), it.Attempts, toNanos(it.NextAttempt), it.LastError, toNanos(queued))
	switch {
	case isForeignKey(err):
		return fmt.Errorf("contact %d: %w", it.ContactID, ErrNotFound)
	case err != nil:
		return fmt.Errorf("store: enqueue device copy: %w", err)
	}
	return nil
}

// DueDevicePeers returns the devices with a copy due at now.
func (tx *Tx) DueDevicePeers(now time.Time) ([]string, error) {
	rows, err := tx.query(`SELECT DISTINCT peer_id FROM device_outbox WHERE next_attempt <= ?`, toNanos(now))
	if err != nil {
		return nil, fmt.Errorf("store: due devices: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("store: due devices: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeviceOutbox returns the copies queued for one device, oldest first.
func (tx *Tx) DeviceOutbox(peer string) ([]DeviceItem, error) {
	rows, err := tx.query(`SELECT `+deviceItemColumns+` FROM device_outbox WHERE peer_id = ? ORDER BY id`, peer)
	if err != nil {
		return nil, fmt.Errorf("store: device outbox: %w", err)
	}
	defer rows.Close()
	var out []DeviceItem
	for rows.Next() {
		var it DeviceItem
		var own int
		var next, queued int64
		if err := rows.Scan(&it.ContactID, &it.PeerID, &own, &it.MessageID, &it.Payload, &it.Attempts, &next, &it.LastError, &queued); err != nil {
			return nil, fmt.Errorf("store: device outbox: %w", err)
		}
		it.Own, it.NextAttempt, it.Queued = own != 0, fromNanos(next), fromNanos(queued)
		out = append(out, it)
	}
	return out, rows.Err()
}

// DeleteDeviceItem removes a device's copy (acked). Deleting one that is
// not there is not an error.
func (tx *Tx) DeleteDeviceItem(peer string, contactID int64, messageID string) error {
	if _, err := tx.exec(`DELETE FROM device_outbox WHERE peer_id = ? AND contact_id = ? AND message_id = ?`, peer, contactID, messageID); err != nil {
		return fmt.Errorf("store: delete device copy: %w", err)
	}
	return nil
}

// DeleteDeviceItems drops every copy queued for a device (revoked).
func (tx *Tx) DeleteDeviceItems(peer string) error {
	if _, err := tx.exec(`DELETE FROM device_outbox WHERE peer_id = ?`, peer); err != nil {
		return fmt.Errorf("store: delete device copies: %w", err)
	}
	return nil
}

// RescheduleDevice records a failed attempt for a device's whole queue.
func (tx *Tx) RescheduleDevice(peer string, attempts int, next time.Time, lastErr string) error {
	if _, err := tx.exec(`UPDATE device_outbox SET attempts = ?, next_attempt = ?, last_error = ? WHERE peer_id = ?`,
		attempts, toNanos(next), lastErr, peer); err != nil {
		return fmt.Errorf("store: reschedule device: %w", err)
	}
	return nil
}
