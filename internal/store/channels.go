package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// Channel is a broadcast channel we own or follow.
type Channel struct {
	ID       []byte // channel id (channel.ID of the owner key)
	Name     string
	OwnerPub []byte
	OwnerKey []byte   // the owner's private seed if the channel is ours; else nil
	BodyKey  []byte   // private channels: the body key; nil for public ones
	Seeds    []string // multiaddrs of peers serving its history
	Created  time.Time
}

// ChannelPost is a verified post as stored.
type ChannelPost struct {
	ChannelID []byte
	Seq       uint64
	Hash      []byte
	Post      []byte // the signed encoding
	At        time.Time
}

const channelColumns = `id, name, owner_pub, owner_key, body_key, seeds, created`

// AddChannel stores a new channel. It returns ErrExists if it is known.
func (tx *Tx) AddChannel(c *Channel) error {
	if len(c.ID) == 0 || len(c.OwnerPub) == 0 {
		return fmt.Errorf("%w: channel without id or owner", ErrInvalid)
	}
	seeds, _ := json.Marshal(nonNilStrings(c.Seeds))
	_, err := tx.exec(`INSERT INTO channels (`+channelColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.OwnerPub, nonNil(c.OwnerKey), nonNil(c.BodyKey), string(seeds), toNanos(c.Created))
	if isUnique(err) {
		return fmt.Errorf("channel: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: add channel: %w", err)
	}
	return nil
}

// SetChannelSeeds replaces a channel's seed addresses.
func (tx *Tx) SetChannelSeeds(id []byte, seeds []string) error {
	b, _ := json.Marshal(nonNilStrings(seeds))
	if _, err := tx.exec(`UPDATE channels SET seeds = ? WHERE id = ?`, string(b), id); err != nil {
		return fmt.Errorf("store: channel seeds: %w", err)
	}
	return nil
}

// Channel returns a channel by id, or ErrNotFound.
func (tx *Tx) Channel(id []byte) (*Channel, error) {
	cs, err := tx.channels(`SELECT `+channelColumns+` FROM channels WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("channel: %w", ErrNotFound)
	}
	return &cs[0], nil
}

// Channels returns every channel, oldest first.
func (tx *Tx) Channels() ([]Channel, error) {
	return tx.channels(`SELECT ` + channelColumns + ` FROM channels ORDER BY created, id`)
}

func (tx *Tx) channels(q string, args ...any) ([]Channel, error) {
	rows, err := tx.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: channels: %w", err)
	}
	defer rows.Close()
	var out []Channel
	for rows.Next() {
		var c Channel
		var seeds string
		var created int64
		if err := rows.Scan(&c.ID, &c.Name, &c.OwnerPub, &c.OwnerKey, &c.BodyKey, &seeds, &created); err != nil {
			return nil, fmt.Errorf("store: channels: %w", err)
		}
		if err := json.Unmarshal([]byte(seeds), &c.Seeds); err != nil {
			return nil, fmt.Errorf("store: channel seeds: %w", err)
		}
		c.OwnerKey, c.BodyKey, c.Created = emptyNil(c.OwnerKey), emptyNil(c.BodyKey), fromNanos(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: channels: %w", err)
	}
	return out, nil
}

// PutChannelPost stores a post; it returns false if a post with that
// sequence number is already stored (whatever its contents: the caller
// verified the chain).
func (tx *Tx) PutChannelPost(p *ChannelPost) (bool, error) {
	res, err := tx.exec(`INSERT INTO channel_posts (channel_id, seq, hash, post, at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, p.ChannelID, int64(p.Seq), p.Hash, p.Post, toNanos(p.At))
	if isForeignKey(err) {
		return false, fmt.Errorf("channel: %w", ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("store: put post: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// ChannelPost returns the post at seq, or ErrNotFound.
func (tx *Tx) ChannelPost(channelID []byte, seq uint64) (*ChannelPost, error) {
	ps, err := tx.ChannelPosts(channelID, seq, 1)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 || ps[0].Seq != seq {
		return nil, fmt.Errorf("post %d: %w", seq, ErrNotFound)
	}
	return &ps[0], nil
}

// ChannelPosts returns up to limit posts (<= 0: all) from sequence number
// from on, in order.
func (tx *Tx) ChannelPosts(channelID []byte, from uint64, limit int) ([]ChannelPost, error) {
	if limit <= 0 {
		limit = -1
	}
	return tx.channelPosts(`SELECT channel_id, seq, hash, post, at FROM channel_posts
		WHERE channel_id = ? AND seq >= ? ORDER BY seq LIMIT ?`, channelID, int64(from), limit)
}

// LastChannelPost returns the post with the highest sequence number, or
// ErrNotFound for a channel without posts.
func (tx *Tx) LastChannelPost(channelID []byte) (*ChannelPost, error) {
	ps, err := tx.channelPosts(`SELECT channel_id, seq, hash, post, at FROM channel_posts
		WHERE channel_id = ? ORDER BY seq DESC LIMIT 1`, channelID)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("last post: %w", ErrNotFound)
	}
	return &ps[0], nil
}

func (tx *Tx) channelPosts(q string, args ...any) ([]ChannelPost, error) {
	rows, err := tx.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: posts: %w", err)
	}
	defer rows.Close()
	var out []ChannelPost
	for rows.Next() {
		var p ChannelPost
		var seq, at int64
		if err := rows.Scan(&p.ChannelID, &seq, &p.Hash, &p.Post, &at); err != nil {
			return nil, fmt.Errorf("store: posts: %w", err)
		}
		p.Seq, p.At = uint64(seq), fromNanos(at)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: posts: %w", err)
	}
	return out, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func emptyNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ChannelSeqs returns the sequence numbers of the stored posts of a
// channel, in order (to find gaps in the hash chain).
func (tx *Tx) ChannelSeqs(channelID []byte) ([]uint64, error) {
	rows, err := tx.query(`SELECT seq FROM channel_posts WHERE channel_id = ? ORDER BY seq`, channelID)
	if err != nil {
		return nil, fmt.Errorf("store: post seqs: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("store: post seqs: %w", err)
		}
		out = append(out, uint64(s))
	}
	return out, rows.Err()
}
