package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Display order (issue 13). Messages are shown in arrival order (seq),
// except that each sender's messages are shown in the order the sender
// wrote them: a message that arrives after messages its sender wrote later
// (it was retried, came another way, or was recovered by a history fetch)
// is placed just before the first of them. Its display key (ord) is then
// halfway between that message's key and the key before it, so no other
// message moves and a client that holds keys keeps them. A message's key
// is coalesce(ord, seq); see Message.Ord.
//
// The sender's order is its timestamp (sent_at), as in Signal; senders
// make their timestamps strictly increasing (messenger). Unlike Signal,
// messages are not sorted by timestamp across senders: a skewed clock
// between two people cannot move a reply above the message it answers,
// because a message is only ever moved relative to its own sender's.

// placeQuery is one table's pair of queries for place: the smallest key of
// a message of the same sender written later than the new one, and the
// largest key below a given key in the same conversation.
type placeQuery struct {
	later, below, set string
}

var (
	placeMessage = placeQuery{
		later: `SELECT coalesce(ord, seq) AS k FROM messages
			WHERE contact_id = ? AND outgoing = 0 AND sent_at > ? AND seq <> ? ORDER BY k LIMIT 1`,
		below: `SELECT max(k) FROM (
			SELECT max(seq) AS k FROM messages WHERE contact_id = ?1 AND seq < ?2 AND ord IS NULL
			UNION ALL SELECT max(ord) FROM messages WHERE contact_id = ?1 AND ord < ?2 AND ord IS NOT NULL)`,
		set: `UPDATE messages SET ord = ? WHERE seq = ?`,
	}
	placeGroupMessage = placeQuery{
		later: `SELECT coalesce(ord, seq) AS k FROM group_messages
			WHERE group_id = ? AND sender = ? AND pending = 0 AND sent_at > ? AND seq <> ? ORDER BY k LIMIT 1`,
		below: `SELECT max(k) FROM (
			SELECT max(seq) AS k FROM group_messages WHERE group_id = ?1 AND seq < ?2 AND ord IS NULL
			UNION ALL SELECT max(ord) FROM group_messages WHERE group_id = ?1 AND ord < ?2 AND ord IS NOT NULL)`,
		set: `UPDATE group_messages SET ord = ? WHERE seq = ?`,
	}
)

// place gives the row seq (of the conversation scope, from the sender
// that sender selects, written at sentAt) its display key, and returns it.
// sender is nil for a 1:1 message (the contact is the sender).
func (tx *Tx) place(q placeQuery, scope, sender any, seq, sentAt int64) (float64, error) {
	args := []any{scope}
	if sender != nil {
		args = append(args, sender)
	}
	var later float64
	err := tx.queryRow(q.later, append(args, sentAt, seq)...).Scan(&later)
	if errors.Is(err, sql.ErrNoRows) {
		return float64(seq), nil // nothing of this sender's is shown after it
	}
	if err != nil {
		return 0, fmt.Errorf("store: place message: %w", err)
	}
	if float64(seq) < later {
		return float64(seq), nil // already before them (a resolved message)
	}
	var below sql.NullFloat64
	if err := tx.queryRow(q.below, scope, later).Scan(&below); err != nil {
		return 0, fmt.Errorf("store: place message: %w", err)
	}
	ord := later - 1
	if below.Valid {
		ord = below.Float64 + (later-below.Float64)/2
	}
	if !(ord < later) || (below.Valid && !(ord > below.Float64)) {
		// No key left between the two (after some fifty insertions at
		// the same place): it stays where it arrived.
		return float64(seq), nil
	}
	if _, err := tx.exec(q.set, ord, seq); err != nil {
		return 0, fmt.Errorf("store: place message: %w", err)
	}
	return ord, nil
}

// LastSent returns the latest timestamp of what we wrote: our 1:1
// messages and our posts (self is our account id) to groups; zero if none.
func (tx *Tx) LastSent(self string) (time.Time, error) {
	var a, b sql.NullInt64
	if err := tx.queryRow(`SELECT max(sent_at) FROM messages WHERE outgoing = 1`).Scan(&a); err != nil {
		return time.Time{}, fmt.Errorf("store: last sent: %w", err)
	}
	if err := tx.queryRow(`SELECT max(sent_at) FROM group_messages WHERE sender = ?`, self).Scan(&b); err != nil {
		return time.Time{}, fmt.Errorf("store: last sent: %w", err)
	}
	if !a.Valid && !b.Valid {
		return time.Time{}, nil
	}
	return fromNanos(max(a.Int64, b.Int64)), nil
}
