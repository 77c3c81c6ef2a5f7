package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// Blob returns the value stored under name, or ErrNotFound.
func (tx *Tx) Blob(name string) ([]byte, error) {
	var v []byte
	err := tx.queryRow(`SELECT value FROM blobs WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("blob %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: blob: %w", err)
	}
	return nonNil(v), nil
}

// PutBlob stores v under name, replacing any previous value.
func (tx *Tx) PutBlob(name string, v []byte) error {
	_, err := tx.exec(`INSERT INTO blobs (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, nonNil(v))
	if err != nil {
		return fmt.Errorf("store: put blob: %w", err)
	}
	return nil
}

// Session returns the ratchet state stored for a contact's primary
// device (its peer id), or ErrNotFound. Other devices' are DeviceSession's.
func (tx *Tx) Session(contactID int64) ([]byte, error) {
	var v []byte
	err := tx.queryRow(`SELECT s.state FROM device_sessions s JOIN contacts c ON c.id = s.contact_id
		WHERE s.contact_id = ? AND s.peer_id = c.peer_id`, contactID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("session of contact %d: %w", contactID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: session: %w", err)
	}
	return nonNil(v), nil
}

// PutSession stores (replaces) the ratchet state of a contact's primary
// device. It returns ErrNotFound (wrapped) if the contact does not exist.
func (tx *Tx) PutSession(contactID int64, state []byte) error {
	var peer string
	err := tx.queryRow(`SELECT peer_id FROM contacts WHERE id = ?`, contactID).Scan(&peer)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: put session: %w", err)
	}
	return tx.PutDeviceSession(contactID, peer, state)
}
