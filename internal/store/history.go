package store

import (
	"database/sql"
	"errors"
	"fmt"
	"unicode/utf8"
)

// History handed to a device just linked (issue 17): what the existing
// device exports, and how the new device stores it. Imported messages
// carry their display key from the export (negative: before every message
// the new device got by itself, which all came after the linking), so
// that importing in batches, resuming after a crash or importing twice
// gives the same order.

// NewestGroupMessages returns the last limit readable messages of a
// group in display order (limit <= 0: all).
func (tx *Tx) NewestGroupMessages(groupID []byte, limit int) ([]GroupMessage, error) {
	if limit <= 0 {
		limit = -1
	}
	return tx.groupMessages(`SELECT * FROM (SELECT `+groupMessageColumns+` FROM group_messages
		WHERE group_id = ? AND pending = 0 ORDER BY coalesce(ord, seq) DESC, seq DESC LIMIT ?) ORDER BY coalesce(ord, seq), seq`, groupID, limit)
}

// NewestMessages returns the last limit messages of a contact in display
// order (limit <= 0: all): the newest as shown, whatever order they
// arrived in (a history imported later is older).
func (tx *Tx) NewestMessages(contactID int64, limit int) ([]Message, error) {
	if limit <= 0 {
		limit = -1
	}
	return tx.messages(`SELECT * FROM (SELECT `+messageColumns+` FROM messages
		WHERE contact_id = ? ORDER BY coalesce(ord, seq) DESC, seq DESC LIMIT ?) ORDER BY coalesce(ord, seq), seq`, contactID, limit)
}

// ImportMessage stores a message of a history export with display key
// ord. It returns false and changes nothing if the message is stored
// already (same contact, direction and id), ErrNotFound (wrapped) for an
// unknown contact and ErrInvalid for a bad body or state.
func (tx *Tx) ImportMessage(m *Message, ord float64) (bool, error) {
	if m.ID == "" || len(m.Body) > MaxBodySize || !utf8.ValidString(m.Body) || !validState(m.Outgoing, m.State) {
		return false, fmt.Errorf("%w: imported message", ErrInvalid)
	}
	var seq int64
	err := tx.queryRow(`INSERT INTO messages (msg_id, contact_id, outgoing, body, sent_at, at, state, ord)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (contact_id, outgoing, msg_id) DO NOTHING RETURNING seq`,
		m.ID, m.ContactID, m.Outgoing, m.Body, toNanos(m.SentAt), toNanos(m.At), m.State, ord).Scan(&seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case isForeignKey(err):
		return false, fmt.Errorf("contact %d: %w", m.ContactID, ErrNotFound)
	case err != nil:
		return false, fmt.Errorf("store: import message: %w", err)
	}
	m.Seq, m.Ord = seq, ord
	return true, nil
}

// ImportGroupMessage is ImportMessage for a group message (readable,
// without its raw form: the new device does not serve it to members
// catching up).
func (tx *Tx) ImportGroupMessage(m *GroupMessage, ord float64) (bool, error) {
	if m.ID == "" || len(m.Body) > MaxBodySize || !utf8.ValidString(m.Body) || m.Sender == "" {
		return false, fmt.Errorf("%w: imported group message", ErrInvalid)
	}
	res, err := tx.exec(`INSERT INTO group_messages (group_id, msg_id, sender, body, sent_at, at, pending, raw, ord)
		VALUES (?, ?, ?, ?, ?, ?, 0, x'', ?) ON CONFLICT DO NOTHING`,
		m.GroupID, m.ID, m.Sender, m.Body, toNanos(m.SentAt), toNanos(m.At), ord)
	if isForeignKey(err) {
		return false, fmt.Errorf("group: %w", ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("store: import group message: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if m.Seq, err = res.LastInsertId(); err != nil {
		return false, err
	}
	m.Ord = ord
	return true, nil
}
