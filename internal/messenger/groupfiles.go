package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// maxSwarmPeers is how many other members a member fetches a group file
// from besides its sender (chosen at random, so that the members' choices
// overlap little and every chunk spreads).
const maxSwarmPeers = 16

// GroupSendFile seals the file at path once and sends a group message
// carrying its manifest (and text as its caption, possibly empty). The
// members fetch the chunks from us and from each other: we give each
// chunk to about one member, whatever the group's size (media.FetchSwarm).
func (m *Messenger) GroupSendFile(ctx context.Context, ref, path, text string) (GroupMessage, error) {
	svc := m.cfg.Media
	if svc == nil {
		return GroupMessage{}, ErrNoMedia
	}
	if len(text) > wire.MaxTextSize {
		return GroupMessage{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLong, len(text), wire.MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return GroupMessage{}, errors.New("message is not valid UTF-8 text")
	}
	if _, err := m.Group(ctx, ref); err != nil {
		return GroupMessage{}, err
	}
	man, err := svc.Prepare(path)
	if err != nil {
		return GroupMessage{}, err
	}
	enc := man.Marshal()
	if len(enc) > wire.MaxAttachmentSize {
		svc.Discard(man)
		return GroupMessage{}, fmt.Errorf("file manifest of %d bytes is too large", len(enc))
	}
	gm, err := m.groupSend(ctx, ref, text, enc)
	if err != nil {
		if gm.ID == "" { // not stored: nobody will ask for the file
			svc.Discard(man)
		}
		return gm, err
	}
	gi, err := m.Group(ctx, ref)
	if err != nil {
		return gm, err
	}
	err = svc.AddOutgoingGroup(ctx, gm.ID, gi.ID, man)
	m.kickGroupHolders()
	return gm, err
}

// receivedGroupFile records the file of group message msgID from sender,
// in the transaction that reads the message: its sources are the
// sender's devices (our own other devices for a file one of them
// posted), then other members' (from their cards).
func (m *Messenger) receivedGroupFile(tx *store.Tx, g *store.Group, sender, msgID string, manifest []byte) error {
	if len(manifest) == 0 || m.cfg.Media == nil {
		return nil
	}
	st, _ := m.groups.get(g.ID)
	if st == nil {
		var err error
		if st, err = m.loadState(tx, g.ID); err != nil {
			return err
		}
	}
	self := ""
	if m.tr != nil {
		self = m.tr.PeerID()
	}
	var seeds, peers []string
	var cards []*identity.Card
	if sender == m.acct {
		// Posted by another device of ours: it holds the file (our
		// account is no member below).
		own, err := m.ownOtherDevices(tx)
		if err != nil {
			return err
		}
		for _, d := range own {
			seeds = append(seeds, d.PeerID)
			if m.tr != nil && len(d.Addrs) > 0 {
				m.tr.AddAddrs(d.PeerID, d.Addrs)
			}
		}
	}
	for acct, mb := range st.members {
		if acct == m.acct {
			continue
		}
		card, err := identity.ParseHistoricCard(memberCard(tx, acct, mb))
		if err != nil {
			continue
		}
		if acct == sender {
			seeds = append(seeds, card.PeerIDs()...)
			cards = append(cards, card)
			continue
		}
		if len(card.Devices) > 0 {
			cards = append(cards, card)
		}
	}
	rand.Shuffle(len(cards), func(i, k int) { cards[i], cards[k] = cards[k], cards[i] })
	n := 0
	for _, c := range cards {
		if c.AccountID() == sender {
			continue
		}
		if n == maxSwarmPeers {
			break
		}
		n++
		for _, d := range c.Devices {
			if d.PeerID != self {
				peers = append(peers, d.PeerID)
			}
		}
	}
	if m.tr != nil {
		for _, c := range cards {
			for _, d := range c.Devices {
				if d.PeerID != self && len(d.Addrs) > 0 {
					m.tr.AddAddrs(d.PeerID, d.Addrs)
				}
			}
		}
	}
	return m.cfg.Media.AddIncomingGroup(tx, msgID, hex.EncodeToString(g.ID), manifest, seeds, peers)
}
