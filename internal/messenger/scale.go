package messenger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// What the scale benchmarks (internal/app/benchscale.go) need to run
// thousands of subscribers that are bare libp2p hosts rather than full
// nodes: the topic and the check a real subscriber runs in its topic
// validator, without a store behind them.

// ChannelReader returns the topic of the channel behind an invite link
// and a check of a post's owner signature that returns its sequence number:
// what a subscriber's topic validator does (channels.go) before a post is
// forwarded.
func ChannelReader(link string) (topic string, check func(data []byte) (uint64, error), err error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(link), ChannelLinkPrefix)
	if !ok {
		return "", nil, ErrBadChannelLink
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadChannelLink, err)
	}
	inv, err := wire.ParseChannelInvite(b)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadChannelLink, err)
	}
	id := channel.ID(inv.OwnerPub)
	k := keysOf(&store.Channel{ID: id[:], OwnerPub: inv.OwnerPub, BodyKey: emptyNil(inv.BodyKey)})
	return k.topic, func(data []byte) (uint64, error) {
		p, err := k.verify(data)
		if err != nil {
			return 0, err
		}
		return p.Seq, nil
	}, nil
}

// GroupReader returns the topic of a group we are a member of and a
// reader of our own messages on it, as a member holding our sender key
// (received over a 1:1 session) opens them: it checks the envelope, the
// signature and decrypts (senderkey.Receiver). Each call of the returned
// function makes a new member's receiver; what it returns is the message's
// id (GroupMessage.ID), so that many simulated members
// each keep their own chain.
func (m *Messenger) GroupReader(ctx context.Context, ref string) (topic string, newMember func() func(data []byte) (id string, err error), err error) {
	var g *store.Group
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { g, err = resolveGroup(tx, ref); return err }); err != nil {
		return "", nil, err
	}
	sender, err := senderkey.UnmarshalSender(g.Sender)
	if err != nil {
		return "", nil, err
	}
	dist := sender.Distribution()
	acct := m.acct
	return groupTopic(g.Secret), func() func([]byte) (string, error) {
		r, rerr := senderkey.NewReceiver(dist, senderkey.Config{})
		var mu sync.Mutex
		return func(data []byte) (string, error) {
			if rerr != nil {
				return "", rerr
			}
			if len(data) > wire.MaxTopicMessage {
				return "", wire.ErrTooLarge
			}
			env, err := wire.ParseGroupEnvelope(data)
			if err != nil {
				return "", err
			}
			if env.Sender != acct {
				return "", errors.New("not the sender whose key we hold")
			}
			mu.Lock()
			pt, err := r.Decrypt(env.Message)
			mu.Unlock()
			if err != nil {
				return "", err
			}
			unpadded, err := wire.Unpad(pt)
			if err != nil {
				return "", err
			}
			if _, err := wire.ParseGroupText(unpadded); err != nil {
				return "", err
			}
			return groupMsgID(data), nil
		}
	}, nil
}

// GroupMessageID returns the id of a group message as published (the id
// GroupSend returns), for counting arrivals.
func GroupMessageID(raw []byte) string { return groupMsgID(raw) }

// QueuedCount returns how many contacts have something in the outbox (a
// message, an ack or a group control not yet acknowledged): zero when the
// node has nothing left to say.
func (m *Messenger) QueuedCount(ctx context.Context) (int, error) {
	var n int
	err := m.st.View(ctx, func(tx *store.Tx) error {
		ids, err := tx.DueContacts(m.now().Add(100 * 365 * 24 * time.Hour))
		n = len(ids)
		return err
	})
	return n, err
}
