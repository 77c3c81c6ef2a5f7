package store

import (
	"cmp"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// ChatSummary is one conversation as a chat list shows it: its last
// message and how many received messages are not read yet.
type ChatSummary struct {
	ContactID int64
	Last      *Message // nil: no message yet
	Unread    int
}

// Chats returns a summary of every contact's conversation, in contact id
// order (callers sort by last message time).
func (tx *Tx) Chats() ([]ChatSummary, error) {
	cs, err := tx.Contacts()
	if err != nil {
		return nil, err
	}
	unread := map[int64]int{}
	rows, err := tx.query(`SELECT contact_id, count(*) FROM messages
		WHERE outgoing = 0 AND state = ? GROUP BY contact_id`, StateReceived)
	if err != nil {
		return nil, fmt.Errorf("store: chats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("store: chats: %w", err)
		}
		unread[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: chats: %w", err)
	}
	out := make([]ChatSummary, 0, len(cs))
	for _, c := range cs {
		s := ChatSummary{ContactID: c.ID, Unread: unread[c.ID]}
		if s.Last, err = tx.lastShown(c.ID); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// lastShown returns the message a conversation shows last (the greatest
// display key, coalesce(ord, seq)), or nil: the newest of those shown at
// their arrival, or of those with a display key of their own (a late
// message, a history import), whichever comes later. Two indexed reads.
func (tx *Tx) lastShown(contactID int64) (*Message, error) {
	var last *Message
	for _, q := range []string{
		`WHERE contact_id = ? AND ord IS NULL ORDER BY seq DESC LIMIT 1`,
		`WHERE contact_id = ? AND ord IS NOT NULL ORDER BY ord DESC LIMIT 1`,
	} {
		m, err := scanMessage(tx.queryRow(`SELECT `+messageColumns+` FROM messages `+q, contactID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("store: chats: %w", err)
		case last == nil || m.Ord > last.Ord:
			last = m
		}
	}
	return last, nil
}

// MessagesBefore returns the newest limit messages of a contact with
// Seq < beforeSeq (beforeSeq <= 0: the newest of all), in display order
// (ascending Ord), and whether older ones remain. It is how a long conversation is
// read page by page from its end.
func (tx *Tx) MessagesBefore(contactID int64, beforeSeq int64, limit int) (page []Message, more bool, err error) {
	if beforeSeq <= 0 {
		beforeSeq = 1<<63 - 1
	}
	if limit <= 0 {
		limit = 100
	}
	ms, err := tx.messages(`SELECT `+messageColumns+` FROM messages
		WHERE contact_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, contactID, beforeSeq, limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(ms) > limit {
		ms, more = ms[:limit], true
	}
	// The page is cut by Seq and shown in display order (Message.Ord).
	slices.SortStableFunc(ms, func(a, b Message) int { return cmp.Compare(a.Ord, b.Ord) })
	return ms, more, nil
}

// MarkRead marks the received messages of a contact with Seq <= upToSeq
// as read and returns how many changed (upToSeq <= 0: all of them).
func (tx *Tx) MarkRead(contactID int64, upToSeq int64) (int, error) {
	if upToSeq <= 0 {
		upToSeq = 1<<63 - 1
	}
	res, err := tx.exec(`UPDATE messages SET state = ?
		WHERE contact_id = ? AND outgoing = 0 AND state = ? AND seq <= ?`, StateRead, contactID, StateReceived, upToSeq)
	if err != nil {
		return 0, fmt.Errorf("store: mark read: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: mark read: %w", err)
	}
	return int(n), nil
}

// OutgoingStateCountsByContact returns, per contact, how many outgoing
// messages are in each state (contacts and states with none are absent).
func (tx *Tx) OutgoingStateCountsByContact() (map[int64]map[string]int, error) {
	rows, err := tx.query(`SELECT contact_id, state, count(*) FROM messages WHERE outgoing = 1 GROUP BY contact_id, state`)
	if err != nil {
		return nil, fmt.Errorf("store: state counts: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]map[string]int)
	for rows.Next() {
		var id int64
		var state string
		var n int
		if err := rows.Scan(&id, &state, &n); err != nil {
			return nil, fmt.Errorf("store: state counts: %w", err)
		}
		if out[id] == nil {
			out[id] = map[string]int{}
		}
		out[id][state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: state counts: %w", err)
	}
	return out, nil
}

// MarkReadIDs is MarkRead returning the ids of the messages it marked
// (for read receipts).
func (tx *Tx) MarkReadIDs(contactID int64, upToSeq int64) ([]string, error) {
	if upToSeq <= 0 {
		upToSeq = 1<<63 - 1
	}
	rows, err := tx.query(`SELECT msg_id FROM messages
		WHERE contact_id = ? AND outgoing = 0 AND state = ? AND seq <= ? ORDER BY seq`, contactID, StateReceived, upToSeq)
	if err != nil {
		return nil, fmt.Errorf("store: mark read: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: mark read: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: mark read: %w", err)
	}
	if _, err := tx.MarkRead(contactID, upToSeq); err != nil {
		return nil, err
	}
	return ids, nil
}
