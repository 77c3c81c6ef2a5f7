package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxBodySize is the largest message body, in bytes, the store accepts.
const MaxBodySize = 64 << 10

// Message states. Outgoing: queued → sent → delivered → read, or failed.
// Incoming: received → read.
const (
	StateQueued    = "queued"
	StateSent      = "sent"
	StateDelivered = "delivered"
	StateRead      = "read"
	StateFailed    = "failed"
	StateReceived  = "received"
)

func validState(outgoing bool, state string) bool {
	switch state {
	case StateRead:
		return true
	case StateQueued, StateSent, StateDelivered, StateFailed:
		return outgoing
	case StateReceived:
		return !outgoing
	}
	return false
}

// Message is one chat message, sent or received.
type Message struct {
	Seq       int64  // local insertion order, assigned by InsertMessage; never reused
	ID        string // message id (hex), unique per (ContactID, Outgoing)
	ContactID int64
	Outgoing  bool
	Body      string    // UTF-8, at most MaxBodySize bytes
	SentAt    time.Time // sender's timestamp
	At        time.Time // local time stored/received; InsertMessage sets now if zero
	State     string    // see the State constants; InsertMessage defaults it to queued/received
	// Ord is the display key: a conversation is shown in ascending Ord.
	// It is Seq, except for a received message that arrived after
	// messages its sender wrote later: it is shown before them (see
	// order.go). It never changes once set.
	Ord float64
}

const messageColumns = `seq, msg_id, contact_id, outgoing, body, sent_at, at, state, ord`

// InsertMessage stores m and indexes its body for Search, setting m.Seq (and
// m.At and m.State if empty). If a message with the same (ContactID,
// Outgoing, ID) exists it returns false, nil and changes nothing (receiving
// twice is not an error). It returns ErrNotFound (wrapped) if the contact
// does not exist and ErrInvalid for a bad body or state.
func (tx *Tx) InsertMessage(m *Message) (inserted bool, err error) {
	if m.ID == "" {
		return false, fmt.Errorf("%w: message without id", ErrInvalid)
	}
	if len(m.Body) > MaxBodySize {
		return false, fmt.Errorf("%w: message body of %d bytes (max %d)", ErrInvalid, len(m.Body), MaxBodySize)
	}
	if !utf8.ValidString(m.Body) {
		return false, fmt.Errorf("%w: message body is not UTF-8", ErrInvalid)
	}
	state := m.State
	if state == "" {
		state = StateReceived
		if m.Outgoing {
			state = StateQueued
		}
	}
	if !validState(m.Outgoing, state) {
		return false, fmt.Errorf("%w: message state %q", ErrInvalid, state)
	}
	at := m.At
	if at.IsZero() {
		at = time.Now()
	}
	var seq int64
	err = tx.queryRow(`INSERT INTO messages (msg_id, contact_id, outgoing, body, sent_at, at, state)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (contact_id, outgoing, msg_id) DO NOTHING RETURNING seq`,
		m.ID, m.ContactID, m.Outgoing, m.Body, toNanos(m.SentAt), toNanos(at), state).Scan(&seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case isForeignKey(err):
		return false, fmt.Errorf("contact %d: %w", m.ContactID, ErrNotFound)
	case err != nil:
		return false, fmt.Errorf("store: insert message: %w", err)
	}
	m.Seq, m.At, m.State, m.Ord = seq, fromNanos(toNanos(at)), state, float64(seq)
	if !m.Outgoing {
		if m.Ord, err = tx.place(placeMessage, m.ContactID, nil, seq, toNanos(m.SentAt)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Message returns one message, or ErrNotFound.
func (tx *Tx) Message(contactID int64, outgoing bool, id string) (*Message, error) {
	row := tx.queryRow(`SELECT `+messageColumns+` FROM messages
		WHERE contact_id = ? AND outgoing = ? AND msg_id = ?`, contactID, outgoing, id)
	m, err := scanMessage(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: message: %w", err)
	}
	return m, nil
}

// SetMessageState changes the state of a message. It returns ErrNotFound if
// there is no such message and ErrInvalid for a state that does not fit its
// direction.
func (tx *Tx) SetMessageState(contactID int64, outgoing bool, id, state string) error {
	if !validState(outgoing, state) {
		return fmt.Errorf("%w: message state %q", ErrInvalid, state)
	}
	res, err := tx.exec(`UPDATE messages SET state = ?
		WHERE contact_id = ? AND outgoing = ? AND msg_id = ?`, state, contactID, outgoing, id)
	if err != nil {
		return fmt.Errorf("store: set message state: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: set message state: %w", err)
	} else if n == 0 {
		return fmt.Errorf("message: %w", ErrNotFound)
	}
	return nil
}

// Messages returns the messages of a contact with Seq > afterSeq, at most
// limit of them (limit <= 0: all): the first limit by Seq (so that paging
// by Seq misses nothing), in display order (ascending Ord).
func (tx *Tx) Messages(contactID int64, afterSeq int64, limit int) ([]Message, error) {
	if limit <= 0 {
		limit = -1
	}
	return tx.messages(`SELECT * FROM (SELECT `+messageColumns+` FROM messages
		WHERE contact_id = ? AND seq > ? ORDER BY seq LIMIT ?) ORDER BY coalesce(ord, seq)`, contactID, afterSeq, limit)
}

// IndexPending adds up to limit stored but not yet indexed messages to the
// full-text index (limit <= 0: all) and returns how many it added. Bodies
// are indexed in batches, not on insert, because indexing one message per
// transaction cost more than storing it.
func (tx *Tx) IndexPending(limit int) (int, error) {
	if limit <= 0 {
		limit = -1
	}
	var mark int64
	if err := tx.queryRow(`SELECT indexed_seq FROM fts_state WHERE id = 1`).Scan(&mark); err != nil {
		return 0, fmt.Errorf("store: index: %w", err)
	}
	var n int
	var last sql.NullInt64
	if err := tx.queryRow(`SELECT count(*), max(seq) FROM (SELECT seq FROM messages WHERE seq > ? ORDER BY seq LIMIT ?)`,
		mark, limit).Scan(&n, &last); err != nil {
		return 0, fmt.Errorf("store: index: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.exec(`INSERT INTO messages_fts (rowid, body)
		SELECT seq, body FROM messages WHERE seq > ? AND seq <= ? ORDER BY seq`, mark, last.Int64); err != nil {
		return 0, fmt.Errorf("store: index: %w", err)
	}
	if _, err := tx.exec(`UPDATE fts_state SET indexed_seq = ? WHERE id = 1`, last.Int64); err != nil {
		return 0, fmt.Errorf("store: index: %w", err)
	}
	return n, nil
}

// Search indexes what is pending (IndexPending) and then searches (see
// Tx.Search), so that it finds every stored message.
func (s *Store) Search(ctx context.Context, query string, limit int) ([]Message, error) {
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.IndexPending(0); return err }); err != nil {
		return nil, err
	}
	var out []Message
	err := s.View(ctx, func(tx *Tx) (err error) { out, err = tx.Search(query, limit); return err })
	return out, err
}

// Search returns the indexed messages (see IndexPending; Store.Search
// indexes first) whose body contains every word of query
// (case- and diacritic-insensitive; the last word may be a prefix), newest
// first, at most limit (limit <= 0: all). query is plain user text: FTS5
// syntax in it (quotes, *, NEAR, AND, column filters) is searched for
// literally, never interpreted. A query without letters or digits matches
// nothing. Messages of pending requests (Contact.Request) are not found.
func (tx *Tx) Search(query string, limit int) ([]Message, error) {
	match := ftsQuery(query)
	if match == "" {
		return nil, nil
	}
	if limit <= 0 {
		limit = -1
	}
	return tx.messages(`SELECT `+prefixed("m.", messageColumns)+`
		FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
		JOIN contacts c ON c.id = m.contact_id
		WHERE messages_fts MATCH ? AND c.request = 0 ORDER BY m.seq DESC LIMIT ?`, match, limit)
}

// ftsQuery turns user text into an FTS5 query that cannot be a syntax
// error: every whitespace-separated word becomes a quoted phrase (the
// tokenizer splits it further, so "don't" stays a phrase), words without a
// letter or digit are dropped, and the last word matches as a prefix.
func ftsQuery(q string) string {
	var terms []string
	for _, w := range strings.Fields(q) {
		if strings.IndexFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) < 0 {
			continue
		}
		terms = append(terms, `"`+strings.ReplaceAll(w, `"`, `""`)+`"`)
	}
	if len(terms) == 0 {
		return ""
	}
	terms[len(terms)-1] += ` *`
	return strings.Join(terms, " ")
}

func prefixed(p, columns string) string {
	return p + strings.ReplaceAll(columns, ", ", ", "+p)
}

func (tx *Tx) messages(query string, args ...any) ([]Message, error) {
	rows, err := tx.query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("store: messages: %w", err)
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: messages: %w", err)
	}
	return out, nil
}

func scanMessage(s scanner) (*Message, error) {
	var (
		m        Message
		sent, at int64
		ord      sql.NullFloat64
	)
	if err := s.Scan(&m.Seq, &m.ID, &m.ContactID, &m.Outgoing, &m.Body, &sent, &at, &m.State, &ord); err != nil {
		return nil, err
	}
	m.SentAt, m.At, m.Ord = fromNanos(sent), fromNanos(at), float64(m.Seq)
	if ord.Valid {
		m.Ord = ord.Float64
	}
	return &m, nil
}

// OutgoingStateCounts returns how many outgoing messages are in each state
// (states with none are absent).
func (tx *Tx) OutgoingStateCounts() (map[string]int, error) {
	rows, err := tx.query(`SELECT state, count(*) FROM messages WHERE outgoing = 1 GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("store: state counts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int)
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("store: state counts: %w", err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: state counts: %w", err)
	}
	return out, nil
}
