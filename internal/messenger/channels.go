package messenger

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Broadcast channels (DESIGN §5, §6): one owner key signs hash-chained
// posts (internal/crypto/channel); they travel on a gossipsub topic whose
// name is derived from the owner key and, for private channels, the body
// key, so only holders of the invite know it. Every subscriber keeps the
// posts and serves them on /samizdat/history/1: a post that a censoring
// neighbour withholds shows as a gap in the chain when the next one
// arrives, and is fetched from any other subscriber and verified.

// ChannelLinkPrefix starts every channel invite link.
const ChannelLinkPrefix = "samizdat:channel/"

// Errors about channels.
var (
	// ErrUnknownChannel is returned when a reference matches no channel.
	ErrUnknownChannel = errors.New("no such channel (see samizdat channel list)")
	// ErrNotOwner is returned by Post for a channel this account does not own.
	ErrNotOwner = errors.New("only the channel's owner can post")
	// ErrBadChannelLink is returned by FollowChannel for a malformed link.
	ErrBadChannelLink = errors.New("not a samizdat channel link")
)

// ChannelInfo is a channel as shown to users and the API.
type ChannelInfo struct {
	ID      string `json:"id"` // hex
	Name    string `json:"name"`
	Owned   bool   `json:"owned"`
	Private bool   `json:"private"`
	Posts   int    `json:"posts"`
	LastSeq int64  `json:"lastSeq"` // -1: no post yet
	Peers   int    `json:"peers"`   // peers on the channel's topic now
}

// ChannelPost is a verified post as shown to users and the API.
type ChannelPost struct {
	Seq   uint64    `json:"seq"`
	Text  string    `json:"text"`
	Alert bool      `json:"alert"`
	At    time.Time `json:"at"` // the owner's timestamp
	Hash  string    `json:"hash"`
	// HasFile: the post carries a file (channelfiles.go), known to the
	// media service by Hash.
	HasFile bool `json:"hasFile,omitempty"`
}

// chanKeys is what verifying and reading a channel's posts needs.
type chanKeys struct {
	id      [channel.IDSize]byte
	pub     ed25519.PublicKey
	bodyKey []byte
	seeds   []string
	topic   string
}

func keysOf(c *store.Channel) chanKeys {
	k := chanKeys{pub: ed25519.PublicKey(c.OwnerPub), bodyKey: c.BodyKey, seeds: c.Seeds}
	copy(k.id[:], c.ID)
	k.topic = channelTopic(c.OwnerPub, c.BodyKey)
	return k
}

// channelTopic derives a channel's topic name from what its invite holds.
func channelTopic(ownerPub, bodyKey []byte) string {
	h := sha256.New()
	h.Write([]byte("samizdat/channel/v1/topic\x00"))
	h.Write(ownerPub)
	h.Write(bodyKey)
	return "/samizdat/ch/1/" + hex.EncodeToString(h.Sum(nil))
}

// CreateChannel creates a channel owned by a fresh key. A private channel
// encrypts its posts with a key that only its invite carries.
func (m *Messenger) CreateChannel(ctx context.Context, name string, private bool) (ChannelInfo, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > wire.MaxGroupName || !utf8.ValidString(name) {
		return ChannelInfo{}, fmt.Errorf("a channel needs a name of 1 to %d bytes", wire.MaxGroupName)
	}
	owner, err := channel.GenerateOwnerKey(m.rand)
	if err != nil {
		return ChannelInfo{}, err
	}
	pub := owner.Public().(ed25519.PublicKey)
	id := channel.ID(pub)
	c := &store.Channel{ID: id[:], Name: name, OwnerPub: pub, OwnerKey: owner.Seed(), Created: m.now()}
	if private {
		if c.BodyKey, err = channel.GenerateBodyKey(m.rand); err != nil {
			return ChannelInfo{}, err
		}
	}
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.AddChannel(c); err != nil {
			return err
		}
		return m.syncChannel(tx, c) // devsync.go: our other devices follow it
	})
	if err != nil {
		return ChannelInfo{}, err
	}
	m.syncWake()
	m.joinChannel(c)
	return channelInfo(c, nil), nil
}

func channelInfo(c *store.Channel, seqs []uint64) ChannelInfo {
	ci := ChannelInfo{ID: hex.EncodeToString(c.ID), Name: c.Name, Owned: c.OwnerKey != nil, Private: c.BodyKey != nil, Posts: len(seqs), LastSeq: -1}
	if len(seqs) > 0 {
		ci.LastSeq = int64(seqs[len(seqs)-1])
	}
	return ci
}

// Channels lists the channels we own or follow.
func (m *Messenger) Channels(ctx context.Context) ([]ChannelInfo, error) {
	out := []ChannelInfo{}
	err := m.st.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.Channels()
		for _, c := range cs {
			seqs, err := tx.ChannelSeqs(c.ID)
			if err != nil {
				return err
			}
			ci := channelInfo(&c, seqs)
			if j := m.joinedTopic(keysOf(&c).topic); j != nil && j.topic != nil {
				ci.Peers = len(j.topic.Peers())
			}
			out = append(out, ci)
		}
		return err
	})
	return out, err
}

// resolveChannel finds a channel by id (hex, or a prefix of at least 6
// digits) or by name.
func resolveChannel(tx *store.Tx, ref string) (*store.Channel, error) {
	ref = strings.TrimSpace(ref)
	cs, err := tx.Channels()
	if err != nil {
		return nil, err
	}
	var found *store.Channel
	for i, c := range cs {
		h := hex.EncodeToString(c.ID)
		if (len(ref) >= 6 && strings.HasPrefix(h, strings.ToLower(ref))) || strings.EqualFold(c.Name, ref) {
			if found != nil {
				return nil, fmt.Errorf("%q names several channels: use the id", ref)
			}
			found = &cs[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownChannel, ref)
	}
	return found, nil
}

// ChannelInvite returns a link to a channel: anyone holding it can follow
// (and, for a private channel, read) it. It names this node as a source of
// the channel's history.
func (m *Messenger) ChannelInvite(ctx context.Context, ref string) (string, error) {
	var c *store.Channel
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { c, err = resolveChannel(tx, ref); return err }); err != nil {
		return "", err
	}
	inv := &wirepb.ChannelInvite{Version: wire.Version, OwnerPub: c.OwnerPub, Name: c.Name, BodyKey: c.BodyKey}
	if m.tr != nil {
		inv.Seeds = m.tr.Addrs()
	}
	for _, s := range c.Seeds {
		if len(inv.Seeds) < 16 {
			inv.Seeds = append(inv.Seeds, s)
		}
	}
	return ChannelLinkPrefix + base64.RawURLEncoding.EncodeToString(wire.Marshal(inv)), nil
}

// FollowChannel subscribes to a channel from its invite link and fetches
// its recent history. Following a channel again returns it unchanged.
func (m *Messenger) FollowChannel(ctx context.Context, link string) (ChannelInfo, error) {
	link = strings.TrimSpace(link)
	raw, ok := strings.CutPrefix(link, ChannelLinkPrefix)
	if !ok {
		return ChannelInfo{}, ErrBadChannelLink
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return ChannelInfo{}, fmt.Errorf("%w: %v", ErrBadChannelLink, err)
	}
	inv, err := wire.ParseChannelInvite(b)
	if err != nil {
		return ChannelInfo{}, fmt.Errorf("%w: %v", ErrBadChannelLink, err)
	}
	id := channel.ID(inv.OwnerPub)
	c := &store.Channel{ID: id[:], Name: inv.Name, OwnerPub: inv.OwnerPub, BodyKey: emptyNil(inv.BodyKey), Seeds: inv.Seeds, Created: m.now()}
	var seqs []uint64
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		if old, err := tx.Channel(id[:]); err == nil {
			c = old
			seqs, err = tx.ChannelSeqs(id[:])
			return err
		}
		if err := tx.AddChannel(c); err != nil {
			return err
		}
		return m.syncChannel(tx, c) // devsync.go: our other devices follow it
	})
	if err != nil {
		return ChannelInfo{}, err
	}
	m.syncWake()
	m.joinChannel(c)
	return channelInfo(c, seqs), nil
}

func emptyNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Post signs and stores the next post of a channel we own and publishes
// it. alert asks subscribers' clients to show it at once.
func (m *Messenger) Post(ctx context.Context, ref, text string, alert bool) (ChannelPost, error) {
	if err := m.revokedErr(); err != nil {
		return ChannelPost{}, err
	}
	if strings.TrimSpace(text) == "" {
		return ChannelPost{}, ErrEmptyMessage
	}
	if len(text) > wire.MaxTextSize {
		return ChannelPost{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLong, len(text), wire.MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return ChannelPost{}, errors.New("post is not valid UTF-8 text")
	}
	if text[0] == wire.ChannelBodyMarker {
		return ChannelPost{}, errors.New("a post cannot start with a NUL character")
	}
	post, k, err := m.signPost(ctx, ref, []byte(text), alert)
	if err != nil {
		return ChannelPost{}, err
	}
	return m.announcePost(ctx, k, post)
}

// signPost signs and stores the next post of a channel we own, with body
// (a text, or a wire.ChannelBody carrying a file: channelfiles.go).
func (m *Messenger) signPost(ctx context.Context, ref string, body []byte, alert bool) (*channel.Post, chanKeys, error) {
	prio := channel.PriorityNormal
	if alert {
		prio = channel.PriorityAlert
	}
	var post *channel.Post
	var k chanKeys
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		c, err := resolveChannel(tx, ref)
		if err != nil {
			return err
		}
		if c.OwnerKey == nil {
			return ErrNotOwner
		}
		k = keysOf(c)
		var prev *channel.Post
		seq := uint64(0)
		if last, err := tx.LastChannelPost(c.ID); err == nil {
			if prev, err = channel.ParsePost(last.Post); err != nil {
				return err
			}
			seq = prev.Seq + 1
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		b := body
		if k.bodyKey != nil {
			if b, err = channel.SealBody(m.rand, k.bodyKey, k.id, seq, body); err != nil {
				return err
			}
		}
		owner := channel.OwnerKey(ed25519.NewKeyFromSeed(c.OwnerKey))
		if post, err = channel.NewPost(owner, k.pub, prev, m.now().UnixMilli(), prio, b); err != nil {
			return err
		}
		h := post.Hash()
		_, err = tx.PutChannelPost(&store.ChannelPost{ChannelID: c.ID, Seq: post.Seq, Hash: h[:], Post: post.Marshal(), At: m.now()})
		return err
	})
	return post, k, err
}

// announcePost tells our clients about a post we signed and publishes it.
func (m *Messenger) announcePost(ctx context.Context, k chanKeys, post *channel.Post) (ChannelPost, error) {
	m.emit(Event{Type: EventPost, Channel: hex.EncodeToString(k.id[:]), Alert: post.Priority == channel.PriorityAlert})
	m.publish(ctx, k.topic, post.Marshal())
	return k.show(post)
}

// show decodes a verified post for display.
func (k chanKeys) show(p *channel.Post) (ChannelPost, error) {
	body := p.Body
	if k.bodyKey != nil {
		var err error
		if body, err = channel.OpenBody(k.bodyKey, k.id, p.Seq, p.Body); err != nil {
			return ChannelPost{}, err
		}
	}
	text, att, err := wire.ParseChannelBody(body)
	if err != nil {
		return ChannelPost{}, errors.New("post is not text")
	}
	h := p.Hash()
	return ChannelPost{Seq: p.Seq, Text: text, Alert: p.Priority == channel.PriorityAlert, At: time.UnixMilli(p.Timestamp).UTC(), Hash: hex.EncodeToString(h[:]),
		HasFile: att != nil}, nil
}

// ChannelPosts returns a channel's posts from sequence number from on
// (limit <= 0: all), oldest first. Posts that do not decrypt (a private
// channel's body tampered by its owner) are left out.
func (m *Messenger) ChannelPosts(ctx context.Context, ref string, from uint64, limit int) (ChannelInfo, []ChannelPost, error) {
	var ci ChannelInfo
	out := []ChannelPost{}
	err := m.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolveChannel(tx, ref)
		if err != nil {
			return err
		}
		seqs, err := tx.ChannelSeqs(c.ID)
		if err != nil {
			return err
		}
		ci = channelInfo(c, seqs)
		ps, err := tx.ChannelPosts(c.ID, from, limit)
		if err != nil {
			return err
		}
		k := keysOf(c)
		for _, sp := range ps {
			p, err := channel.ParsePost(sp.Post)
			if err != nil {
				continue
			}
			if cp, err := k.show(p); err == nil {
				out = append(out, cp)
			}
		}
		return nil
	})
	return ci, out, err
}

// joinChannel subscribes to a channel's topic.
func (m *Messenger) joinChannel(c *store.Channel) {
	k := keysOf(c)
	owned := c.OwnerKey != nil
	m.join(k.topic, &joined{channel: c.ID},
		func(_ context.Context, from string, data []byte) p2p.Verdict {
			p, err := k.verify(data)
			if err != nil {
				m.log.Warn("postRejected", "channel", shortHex(k.id[:]), "peer", shortPeer(from), "err", err)
				return p2p.Reject
			}
			if d := m.bc().drop; d != nil && d(data) {
				return p2p.Ignore
			}
			_ = p
			return p2p.Accept
		},
		func(ctx context.Context, from string, data []byte) {
			p, err := k.verify(data)
			if err != nil {
				return // the validator logged it
			}
			if m.acceptPosts(ctx, k, []*channel.Post{p}, from) {
				if j := m.joinedTopic(k.topic); j != nil {
					kickJoined(j)
				}
			}
		},
		func(ctx context.Context) {
			if !owned {
				m.fillChannel(ctx, k)
			}
		})
}

// verify parses a post and checks it belongs to the channel and carries
// the owner's signature.
func (k chanKeys) verify(data []byte) (*channel.Post, error) {
	if len(data) > wire.MaxTopicMessage {
		return nil, wire.ErrTooLarge
	}
	p, err := channel.ParsePost(data)
	if err != nil {
		return nil, err
	}
	if err := channel.Verify(k.pub, p); err != nil {
		return nil, err
	}
	return p, nil
}

// acceptPosts stores authentic posts that fit the chain we have: a post
// next to a stored one must link to it (a fork is refused and logged). It
// reports whether the chain now has a gap below its newest post.
func (m *Messenger) acceptPosts(ctx context.Context, k chanKeys, posts []*channel.Post, from string) (gap bool) {
	var stored []*channel.Post
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		stored = stored[:0]
		for _, p := range posts {
			if d := m.bc().drop; d != nil && d(p.Marshal()) {
				continue
			}
			h := p.Hash()
			if old, err := tx.ChannelPost(k.id[:], p.Seq); err == nil {
				if string(old.Hash) != string(h[:]) {
					m.log.Warn("postForked", "channel", shortHex(k.id[:]), "peer", shortPeer(from), "seq", p.Seq)
				}
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if p.Seq > 0 {
				if prev, err := tx.ChannelPost(k.id[:], p.Seq-1); err == nil {
					if pp, err := channel.ParsePost(prev.Post); err != nil || channel.VerifyNext(pp, p) != nil {
						m.log.Warn("postChainBroken", "channel", shortHex(k.id[:]), "peer", shortPeer(from), "seq", p.Seq)
						continue
					}
				}
			}
			if next, err := tx.ChannelPost(k.id[:], p.Seq+1); err == nil {
				if np, err := channel.ParsePost(next.Post); err != nil || channel.VerifyNext(p, np) != nil {
					m.log.Warn("postChainBroken", "channel", shortHex(k.id[:]), "peer", shortPeer(from), "seq", p.Seq)
					continue
				}
			}
			if _, err := tx.PutChannelPost(&store.ChannelPost{ChannelID: k.id[:], Seq: p.Seq, Hash: h[:], Post: p.Marshal(), At: m.now()}); err != nil {
				return err
			}
			if err := m.receivedChannelFile(tx, k, p, from); err != nil { // channelfiles.go
				return err
			}
			stored = append(stored, p)
		}
		seqs, err := tx.ChannelSeqs(k.id[:])
		gap = len(missingSeqs(seqs, 1)) > 0
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("postNotStored", "channel", shortHex(k.id[:]), "err", err)
		}
		return false
	}
	for _, p := range stored {
		m.emit(Event{Type: EventPost, Channel: hex.EncodeToString(k.id[:]), Alert: p.Priority == channel.PriorityAlert})
	}
	return gap
}

// missingSeqs returns up to limit sequence numbers missing from the
// recent history: the historyPageSize posts up to the newest we have
// (ascending seqs). Older posts are not fetched: a new follower gets the
// recent ones, not the whole archive.
func missingSeqs(seqs []uint64, limit int) []uint64 {
	if len(seqs) == 0 {
		return nil
	}
	last := seqs[len(seqs)-1]
	from := uint64(0)
	if last >= historyPageSize {
		from = last - historyPageSize + 1
	}
	var out []uint64
	i := 0
	for s := from; s < last && len(out) < limit; s++ {
		for i < len(seqs) && seqs[i] < s {
			i++
		}
		if i < len(seqs) && seqs[i] == s {
			continue
		}
		out = append(out, s)
	}
	return out
}

// fillChannel fetches missing posts (gaps in the chain) and newer ones
// from the channel's topic peers and seeds, verifying each, until the
// chain has no gap or every peer was tried a few times.
func (m *Messenger) fillChannel(ctx context.Context, k chanKeys) {
	if m.tr == nil {
		return
	}
	delay := fillRetryMin
	for attempt := 0; attempt < fillRetries && ctx.Err() == nil; attempt++ {
		var seqs []uint64
		if err := m.st.View(ctx, func(tx *store.Tx) (err error) { seqs, err = tx.ChannelSeqs(k.id[:]); return err }); err != nil {
			return
		}
		missing := missingSeqs(seqs, historyPageSize)
		req := &wirepb.HistoryRequest{Topic: k.topic, Limit: historyPageSize}
		switch {
		case len(missing) > 0:
			req.FromSeq = missing[0]
			req.Limit = uint32(min(historyPageSize, missing[len(missing)-1]-missing[0]+1))
		case len(seqs) > 0:
			req.FromSeq = seqs[len(seqs)-1] + 1 // anything newer
		default:
			req.SinceUnixMs = m.now().Add(-followHistoryAge).UnixMilli()
		}
		var peers []seedPeer
		if len(missing) == 0 {
			// A routine check for news: ask two of the topic's peers, and
			// dial the seeds only with none (gossipsub learns who is on
			// the topic a moment after joining: give it that moment).
			peers = m.topicPeers(ctx, k.topic)
			if len(peers) == 0 {
				peers = m.historyPeers(k.topic, k.seeds)
			}
			peers = peers[:min(2, len(peers))]
		} else {
			peers = m.historyPeers(k.topic, k.seeds)
		}
		complete := false
		for i, p := range peers {
			if i >= historyPeersTry || ctx.Err() != nil {
				break
			}
			items, err := m.fetchHistory(ctx, p, req)
			if err != nil {
				m.log.Debug("historyFetchFailed", "peer", shortPeer(p.id), "err", err)
			}
			var posts []*channel.Post
			bad := 0
			for _, it := range items {
				post, err := k.verify(it)
				if err != nil {
					bad++
					continue
				}
				posts = append(posts, post)
			}
			if bad > 0 {
				m.log.Warn("historyRejected", "channel", shortHex(k.id[:]), "peer", shortPeer(p.id), "items", bad)
			}
			if len(posts) > 0 && !m.acceptPosts(ctx, k, posts, p.id) && len(missing) > 0 {
				complete = true
				break
			}
		}
		if len(missing) == 0 || complete {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, fillRetryMax)
	}
}

func shortHex(b []byte) string {
	if len(b) > 4 {
		b = b[:4]
	}
	return hex.EncodeToString(b)
}
