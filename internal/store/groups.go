package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Group is a private group we belong or belonged to.
type Group struct {
	ID      []byte
	Secret  []byte // derives the gossipsub topic
	Name    string
	Sender  []byte // our senderkey.Sender state for the current epoch
	Gone    bool   // we left or were removed
	Created time.Time
}

// GroupMessage is one message of a group.
type GroupMessage struct {
	Seq     int64
	GroupID []byte
	ID      string // hex hash of Raw
	Sender  string // account id
	Body    string
	SentAt  time.Time
	At      time.Time
	Pending bool   // not decrypted yet (sender key missing)
	Raw     []byte // the encrypted message as published
	// Ord is the display key, as Message.Ord: Seq, except for a message
	// that arrived after messages its sender wrote later (order.go).
	Ord float64
}

const groupColumns = `id, secret, name, sender, gone, created`

// AddGroup stores a new group; ErrExists if it is known.
func (tx *Tx) AddGroup(g *Group) error {
	_, err := tx.exec(`INSERT INTO groups (`+groupColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		g.ID, g.Secret, g.Name, nonNil(g.Sender), g.Gone, toNanos(g.Created))
	if isUnique(err) {
		return fmt.Errorf("group: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: add group: %w", err)
	}
	return nil
}

// UpdateGroup writes a group's name, sender key and gone flag.
func (tx *Tx) UpdateGroup(g *Group) error {
	res, err := tx.exec(`UPDATE groups SET name = ?, sender = ?, gone = ? WHERE id = ?`, g.Name, nonNil(g.Sender), g.Gone, g.ID)
	if err != nil {
		return fmt.Errorf("store: update group: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("group: %w", ErrNotFound)
	}
	return nil
}

// SetGroupSecret fills in the secret, name and gone flag of a group
// stored without a secret (a placeholder).
func (tx *Tx) SetGroupSecret(g *Group) error {
	if _, err := tx.exec(`UPDATE groups SET secret = ?, name = ?, gone = ? WHERE id = ?`, g.Secret, g.Name, g.Gone, g.ID); err != nil {
		return fmt.Errorf("store: set group secret: %w", err)
	}
	return nil
}

// Group returns a group by id, or ErrNotFound.
func (tx *Tx) Group(id []byte) (*Group, error) {
	gs, err := tx.groups(`SELECT `+groupColumns+` FROM groups WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(gs) == 0 {
		return nil, fmt.Errorf("group: %w", ErrNotFound)
	}
	return &gs[0], nil
}

// Groups returns every group with a secret (not placeholders), oldest first.
func (tx *Tx) Groups() ([]Group, error) {
	return tx.groups(`SELECT ` + groupColumns + ` FROM groups WHERE length(secret) > 0 ORDER BY created, id`)
}

func (tx *Tx) groups(q string, args ...any) ([]Group, error) {
	rows, err := tx.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: groups: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		var g Group
		var created int64
		if err := rows.Scan(&g.ID, &g.Secret, &g.Name, &g.Sender, &g.Gone, &created); err != nil {
			return nil, fmt.Errorf("store: groups: %w", err)
		}
		g.Sender, g.Created = emptyNil(g.Sender), fromNanos(created)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: groups: %w", err)
	}
	return out, nil
}

// PutGroupOp stores a membership operation under its hash; it returns
// false if it was already stored.
func (tx *Tx) PutGroupOp(groupID, hash, op []byte) (bool, error) {
	res, err := tx.exec(`INSERT INTO group_ops (group_id, hash, op) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, groupID, hash, op)
	if err != nil {
		return false, fmt.Errorf("store: put group op: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// GroupOps returns every stored operation of a group (in no particular
// order: the caller orders the DAG).
func (tx *Tx) GroupOps(groupID []byte) ([][]byte, error) {
	rows, err := tx.query(`SELECT op FROM group_ops WHERE group_id = ? ORDER BY hash`, groupID)
	if err != nil {
		return nil, fmt.Errorf("store: group ops: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("store: group ops: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Sender keys are kept per (group, member, epoch), where member is the
// member's account id for a key from a node before sender keys per device
// (issue 17), else "account/device" (the device's peer id): neither
// holds a "/". The functions below that take a member's account id
// (DeleteGroupKeys, PlaceholdersKeyedBy) cover all of its devices.

// PutGroupKey stores (replaces) a member's sender key for an epoch.
func (tx *Tx) PutGroupKey(groupID []byte, member string, epoch uint32, state []byte) error {
	_, err := tx.exec(`INSERT INTO group_keys (group_id, member, epoch, state) VALUES (?, ?, ?, ?)
		ON CONFLICT (group_id, member, epoch) DO UPDATE SET state = excluded.state`, groupID, member, int64(epoch), state)
	if err != nil {
		return fmt.Errorf("store: put group key: %w", err)
	}
	return nil
}

// GroupKey returns a member's sender key for an epoch, or ErrNotFound.
func (tx *Tx) GroupKey(groupID []byte, member string, epoch uint32) ([]byte, error) {
	var b []byte
	err := tx.queryRow(`SELECT state FROM group_keys WHERE group_id = ? AND member = ? AND epoch = ?`, groupID, member, int64(epoch)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("group key: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: group key: %w", err)
	}
	return b, nil
}

// PlaceholdersKeyedBy counts the placeholder groups (no secret yet) that
// hold a sender key of member: what one contact has made us keep for
// groups we do not know.
func (tx *Tx) PlaceholdersKeyedBy(member string) (int, error) {
	var n int
	err := tx.queryRow(`SELECT count(DISTINCT k.group_id) FROM group_keys k JOIN groups g ON g.id = k.group_id
		WHERE (k.member = ? OR substr(k.member, 1, ?) = ?) AND length(g.secret) = 0`, member, len(member)+1, member+"/").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: placeholders keyed by: %w", err)
	}
	return n, nil
}

// TrimGroupKeys keeps a member's keep newest sender-key epochs in a group
// and forgets older ones.
func (tx *Tx) TrimGroupKeys(groupID []byte, member string, keep int) error {
	_, err := tx.exec(`DELETE FROM group_keys WHERE group_id = ? AND member = ? AND epoch NOT IN
		(SELECT epoch FROM group_keys WHERE group_id = ? AND member = ? ORDER BY epoch DESC LIMIT ?)`,
		groupID, member, groupID, member, keep)
	if err != nil {
		return fmt.Errorf("store: trim group keys: %w", err)
	}
	return nil
}

// DeleteGroupKeys forgets a member's sender keys (the member was removed),
// or with member "account/device" those of one device (revoked).
func (tx *Tx) DeleteGroupKeys(groupID []byte, member string) error {
	if _, err := tx.exec(`DELETE FROM group_keys WHERE group_id = ? AND (member = ? OR substr(member, 1, ?) = ?)`,
		groupID, member, len(member)+1, member+"/"); err != nil {
		return fmt.Errorf("store: delete group keys: %w", err)
	}
	return nil
}

const groupMessageColumns = `seq, group_id, msg_id, sender, body, sent_at, at, pending, raw, ord`

// PutGroupMessage stores a message (setting m.Seq); it returns false and
// changes nothing if one with the same id is stored.
func (tx *Tx) PutGroupMessage(m *GroupMessage) (bool, error) {
	if len(m.Body) > MaxBodySize {
		return false, fmt.Errorf("%w: message body of %d bytes (max %d)", ErrInvalid, len(m.Body), MaxBodySize)
	}
	res, err := tx.exec(`INSERT INTO group_messages (group_id, msg_id, sender, body, sent_at, at, pending, raw)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		m.GroupID, m.ID, m.Sender, m.Body, toNanos(m.SentAt), toNanos(m.At), m.Pending, nonNil(m.Raw))
	if isForeignKey(err) {
		return false, fmt.Errorf("group: %w", ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("store: put group message: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if m.Seq, err = res.LastInsertId(); err != nil {
		return false, err
	}
	m.Ord = float64(m.Seq)
	if !m.Pending {
		if m.Ord, err = tx.place(placeGroupMessage, m.GroupID, m.Sender, m.Seq, toNanos(m.SentAt)); err != nil {
			return false, err
		}
	}
	return true, nil
}

// ResolveGroupMessage fills in a pending message once it is decrypted.
func (tx *Tx) ResolveGroupMessage(groupID []byte, msgID, sender, body string, sentAt time.Time) error {
	var seq int64
	err := tx.queryRow(`UPDATE group_messages SET sender = ?, body = ?, sent_at = ?, pending = 0
		WHERE group_id = ? AND msg_id = ? RETURNING seq`,
		sender, body, toNanos(sentAt), groupID, msgID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: resolve group message: %w", err)
	}
	_, err = tx.place(placeGroupMessage, groupID, sender, seq, toNanos(sentAt))
	return err
}

// GroupMessages returns up to limit (<= 0: all) readable messages after
// afterSeq: the first limit by Seq (so that paging by Seq misses nothing),
// in display order (ascending Ord).
func (tx *Tx) GroupMessages(groupID []byte, afterSeq int64, limit int) ([]GroupMessage, error) {
	if limit <= 0 {
		limit = -1
	}
	return tx.groupMessages(`SELECT * FROM (SELECT `+groupMessageColumns+` FROM group_messages
		WHERE group_id = ? AND seq > ? AND pending = 0 ORDER BY seq LIMIT ?) ORDER BY coalesce(ord, seq)`, groupID, afterSeq, limit)
}

// PendingGroupMessages returns the messages not decrypted yet.
func (tx *Tx) PendingGroupMessages(groupID []byte) ([]GroupMessage, error) {
	return tx.groupMessages(`SELECT `+groupMessageColumns+` FROM group_messages
		WHERE group_id = ? AND pending = 1 ORDER BY seq`, groupID)
}

// RecentGroupMessages returns the raw form of the newest limit messages
// received at or after since, oldest first (what a member catching up asks
// for).
func (tx *Tx) RecentGroupMessages(groupID []byte, since time.Time, limit int) ([]GroupMessage, error) {
	return tx.groupMessages(`SELECT * FROM (SELECT `+groupMessageColumns+` FROM group_messages
		WHERE group_id = ? AND at >= ? ORDER BY seq DESC LIMIT ?) ORDER BY seq`, groupID, toNanos(since), limit)
}

func (tx *Tx) groupMessages(q string, args ...any) ([]GroupMessage, error) {
	rows, err := tx.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: group messages: %w", err)
	}
	defer rows.Close()
	var out []GroupMessage
	for rows.Next() {
		var m GroupMessage
		var sent, at int64
		var ord sql.NullFloat64
		if err := rows.Scan(&m.Seq, &m.GroupID, &m.ID, &m.Sender, &m.Body, &sent, &at, &m.Pending, &m.Raw, &ord); err != nil {
			return nil, fmt.Errorf("store: group messages: %w", err)
		}
		m.SentAt, m.At, m.Ord = fromNanos(sent), fromNanos(at), float64(m.Seq)
		if ord.Valid {
			m.Ord = ord.Float64
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: group messages: %w", err)
	}
	return out, nil
}

// GroupKeyRow is one member's stored sender key for an epoch.
type GroupKeyRow struct {
	Member string
	Epoch  uint32
	State  []byte
}

// GroupKeys returns every sender key stored for a group (what a newly
// linked device of ours is given, issue 17).
func (tx *Tx) GroupKeys(groupID []byte) ([]GroupKeyRow, error) {
	rows, err := tx.query(`SELECT member, epoch, state FROM group_keys WHERE group_id = ? ORDER BY member, epoch`, groupID)
	if err != nil {
		return nil, fmt.Errorf("store: group keys: %w", err)
	}
	defer rows.Close()
	var out []GroupKeyRow
	for rows.Next() {
		var k GroupKeyRow
		var epoch int64
		if err := rows.Scan(&k.Member, &epoch, &k.State); err != nil {
			return nil, fmt.Errorf("store: group keys: %w", err)
		}
		k.Epoch = uint32(epoch)
		out = append(out, k)
	}
	return out, rows.Err()
}
