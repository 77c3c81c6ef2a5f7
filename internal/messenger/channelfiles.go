package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// Files in channel posts. The owner seals the file once into the chunk
// store; the post's body (signed with the rest of the post, and sealed in
// a private channel) carries its manifest as a wire.ChannelBody. The owner
// serves each chunk to about one subscriber (media's seed budget, as for
// a group file; a small channel's few subscribers get it whole,
// channelServeAll) and the subscribers fetch from each other: their sources
// are the peer that passed them the post and the channel's topic peers,
// i.e. only peers gossipsub already shows them on the topic (and the
// seeds of the invite). A subscriber serves the chunks it holds to anyone
// who names their hash, which only holders of the post's manifest know
// (docs/SECURITY.md).

// DefaultMaxChannelFileSize is the largest file posted on, or fetched
// from, a channel when Config.MaxChannelFileSize is zero.
const DefaultMaxChannelFileSize = 100 << 20

// channelServeAll: with at most this many peers on the channel's topic
// when it posts a file, the owner serves the whole file to each of them
// (media.AddOutgoingOpen). Such subscribers may know no one but the
// owner (they followed its invite), and under the seed budget all but
// one would wait minutes for its refill; a few copies cost less. Above
// it, the owner gives each chunk to about one subscriber and gossipsub's
// mesh links the subscribers to each other.
const channelServeAll = 4

func (m *Messenger) maxChannelFile() int64 {
	if m.cfg.MaxChannelFileSize > 0 {
		return m.cfg.MaxChannelFileSize
	}
	return DefaultMaxChannelFileSize
}

// PostFile posts the file at path on a channel we own, with text as its
// caption (possibly empty); alert as for Post.
func (m *Messenger) PostFile(ctx context.Context, ref, path, text string, alert bool) (ChannelPost, error) {
	svc := m.cfg.Media
	if svc == nil {
		return ChannelPost{}, ErrNoMedia
	}
	if err := m.checkChannelFile(ctx, ref, text); err != nil {
		return ChannelPost{}, err
	}
	man, err := svc.Prepare(path)
	if err != nil {
		return ChannelPost{}, err
	}
	return m.postManifest(ctx, ref, text, alert, man)
}

// PostUpload is PostFile for a file streamed to the node (the web app).
func (m *Messenger) PostUpload(ctx context.Context, ref string, up Upload, text string, alert bool) (ChannelPost, error) {
	svc := m.cfg.Media
	if svc == nil {
		return ChannelPost{}, ErrNoMedia
	}
	if err := m.checkChannelFile(ctx, ref, text); err != nil {
		return ChannelPost{}, err
	}
	if up.Size > m.maxChannelFile() {
		return ChannelPost{}, fmt.Errorf("%w: %d bytes, the limit for channel files is %d", media.ErrTooLarge, up.Size, m.maxChannelFile())
	}
	if up.Meta.DurationMS < 0 || up.Meta.DurationMS > media.MaxDuration || len(up.Meta.Waveform) > media.MaxWaveform {
		return ChannelPost{}, fmt.Errorf("%w: duration or waveform out of range", media.ErrBadManifest)
	}
	man, err := svc.PrepareReader(up.Body, up.Name, up.Size, up.MIME)
	if err != nil {
		return ChannelPost{}, err
	}
	man.DurationMS, man.Waveform = up.Meta.DurationMS, up.Meta.Waveform
	return m.postManifest(ctx, ref, text, alert, man)
}

// checkChannelFile refuses a caption or channel before the file is read.
func (m *Messenger) checkChannelFile(ctx context.Context, ref, text string) error {
	if len(text) > wire.MaxTextSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLong, len(text), wire.MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return errors.New("post is not valid UTF-8 text")
	}
	return m.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolveChannel(tx, ref)
		if err == nil && c.OwnerKey == nil {
			err = ErrNotOwner
		}
		return err
	})
}

func (m *Messenger) postManifest(ctx context.Context, ref, text string, alert bool, man *media.Manifest) (ChannelPost, error) {
	if man.Size > m.maxChannelFile() {
		return ChannelPost{}, fmt.Errorf("%w: %d bytes, the limit for channel files is %d", media.ErrTooLarge, man.Size, m.maxChannelFile())
	}
	enc := man.Marshal()
	if len(enc) > wire.MaxAttachmentSize {
		return ChannelPost{}, fmt.Errorf("file manifest of %d bytes is too large", len(enc))
	}
	post, k, err := m.signPost(ctx, ref, wire.MarshalChannelBody(text, enc), alert)
	if err != nil {
		return ChannelPost{}, err
	}
	h := post.Hash()
	id, ch := hex.EncodeToString(h[:]), hex.EncodeToString(k.id[:])
	// Recorded (under the seed budget, for a larger channel) before anyone
	// can ask for it.
	add := m.cfg.Media.AddOutgoingGroup
	if m.channelPeers(k) <= channelServeAll {
		add = m.cfg.Media.AddOutgoingOpen
	}
	if err := add(ctx, id, ch, man); err != nil {
		return ChannelPost{}, err
	}
	return m.announcePost(ctx, k, post)
}

// channelPeers is how many peers gossipsub shows on the channel's topic.
func (m *Messenger) channelPeers(k chanKeys) int {
	if j := m.joinedTopic(k.topic); j != nil && j.topic != nil {
		return len(j.topic.Peers())
	}
	return 0
}

// receivedChannelFile records the file of a post being stored, in the
// same transaction: its sources are the peer that passed us the post,
// the channel's topic peers and the invite's seeds. A file over the
// channel limit is not fetched (the post shows its caption).
func (m *Messenger) receivedChannelFile(tx *store.Tx, k chanKeys, p *channel.Post, from string) error {
	if m.cfg.Media == nil {
		return nil
	}
	body := p.Body
	if k.bodyKey != nil {
		var err error
		if body, err = channel.OpenBody(k.bodyKey, k.id, p.Seq, p.Body); err != nil {
			return nil // shown as not text, like any post that does not open
		}
	}
	_, att, err := wire.ParseChannelBody(body)
	if err != nil || att == nil {
		return nil
	}
	h := p.Hash()
	id := hex.EncodeToString(h[:])
	man, err := media.ParseManifest(att)
	if err != nil {
		m.log.Warn("channelFileRefused", "channel", shortHex(k.id[:]), "err", err)
		return nil
	}
	if man.Size > m.maxChannelFile() {
		m.log.Info("channelFileTooLarge", "channel", shortHex(k.id[:]), "size", man.Size, "limit", m.maxChannelFile())
		return nil
	}
	var peers []string
	seen := map[string]bool{}
	add := func(id string, addrs []string) {
		if id == "" || seen[id] || (m.tr != nil && id == m.tr.PeerID()) || len(peers) >= maxSwarmPeers+1 {
			return
		}
		seen[id] = true
		peers = append(peers, id)
		if m.tr != nil && len(addrs) > 0 {
			m.tr.AddAddrs(id, addrs)
		}
	}
	add(from, nil)
	if m.tr != nil {
		for _, sp := range m.historyPeers(k.topic, k.seeds) {
			add(sp.id, sp.addrs)
		}
	}
	return m.cfg.Media.AddIncomingGroup(tx, id, hex.EncodeToString(k.id[:]), att, nil, peers)
}
