package messenger

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"

	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Card updates (issue 17): when our device list changes (a device linked
// or revoked), our new card goes at once to every device of every contact,
// as a small CardUpdate message queued like an ack (durable, direct or
// through the device's mailbox hosts, needing no answer but the stream's
// OK). So a revoked device stops receiving as soon as the contact holds
// the update, not with our next message. The update also carries the own
// cards we hold of the account's other devices (their prekeys and mailbox
// hosts), so a contact can reach a device that is offline and never wrote
// to it.
//
// A contact applying a card that drops a device drops what it queued for
// that device. If the dropped device was the contact's primary one (its
// peer id), the card's first device becomes primary: its device session
// becomes the contact's session, the primary outbox (sealed on the revoked
// device's session) is dropped, and the new primary's own copies move to
// the outbox (adoptPrimaryQueue) sealed afresh; a message left with no
// copy for any listed device that none acked is marked failed, so the
// user can retry it.

// cardItemPrefix marks the queued card updates (an ack-like item).
const cardItemPrefix = ackItemPrefix + "c"

// blobCardPushed holds the device-list version our card was last pushed
// under: a device linked while its node was down (a new device's first
// start) pushes its card once at start.
const blobCardPushed = "cardpushed.version"

// pushCardIfNew pushes our card at start if the device list changed since
// the last push (on a new device: its own card, with its prekeys and
// mailbox hosts, reaches the contacts before it writes to them).
func (m *Messenger) pushCardIfNew(ctx context.Context) {
	due := false
	_ = m.st.View(ctx, func(tx *store.Tx) error {
		l, err := devices.Load(tx)
		if err != nil || len(l.Active()) < 2 {
			return err
		}
		b, err := tx.Blob(blobCardPushed)
		due = errors.Is(err, store.ErrNotFound) || (err == nil && (len(b) != 8 || binary.BigEndian.Uint64(b) != l.Version))
		return nil
	})
	if due {
		// Re-signed first: the card made before may predate the list.
		if err := m.DevicesChanged(ctx); err != nil && ctx.Err() == nil {
			m.log.Info("cardPushFailed", "err", err)
		}
	}
}

// pushCard queues our current card for every device of every contact.
func (m *Messenger) pushCard(ctx context.Context) error {
	card, err := m.card(ctx)
	if err != nil {
		return err
	}
	now := m.now()
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		devCards, err := m.ownDeviceCards(tx)
		if err != nil {
			return err
		}
		l, err := devices.Load(tx)
		if err != nil {
			return err
		}
		if err := tx.PutBlob(blobCardPushed, binary.BigEndian.AppendUint64(nil, l.Version)); err != nil {
			return err
		}
		cs, err := tx.Contacts()
		if err != nil {
			return err
		}
		b := newBatch()
		for i := range cs {
			c := &cs[i]
			if !c.Request.IsZero() || len(c.Card) == 0 {
				continue // a stranger's request gets no traffic
			}
			// An older update still queued is superseded.
			queued, err := tx.Outbox(c.ID)
			if err != nil {
				return err
			}
			for _, it := range queued {
				if strings.HasPrefix(it.MessageID, cardItemPrefix) {
					if err := tx.DeleteOutbox(c.ID, it.MessageID); err != nil {
						return err
					}
				}
			}
			id := make([]byte, wire.MessageIDSize)
			if _, err := io.ReadFull(m.rand, id); err != nil {
				return err
			}
			itemID := cardItemPrefix + hex.EncodeToString(id)
			p := &wirepb.Payload{Version: wire.Version, SenderCard: card, Body: &wirepb.Payload_Card{Card: &wirepb.CardUpdate{DeviceCards: devCards}}}
			rec, err := b.record(tx, c.ID)
			if err != nil {
				return err
			}
			if s, err := m.encrypt(rec, c, id, p); err == nil {
				b.setRecord(c.ID, rec)
				if err := tx.Enqueue(store.OutboxItem{MessageID: itemID, ContactID: c.ID, Payload: s.bytes, NextAttempt: now}); err != nil {
					return err
				}
			} else {
				m.log.Info("cardUpdateNotSealed", "contact", identity.Short(c.AccountID), "err", err)
			}
			if err := m.markCardSent(tx, c.ID); err != nil {
				return err
			}
			held, err := identity.ParseSignedCard(c.Card)
			if err != nil {
				continue
			}
			bare := wire.Marshal(p)
			for _, d := range held.Devices {
				if d.PeerID == "" || d.PeerID == c.PeerID || d.PeerID == m.selfPeer() {
					continue
				}
				if err := tx.EnqueueDevice(store.DeviceItem{ContactID: c.ID, PeerID: d.PeerID, MessageID: itemID, Payload: bare, NextAttempt: now}); err != nil {
					return err
				}
			}
		}
		// Our other devices get it too (they learn this device's
		// addresses, prekeys and mailbox hosts: a new device's first
		// start), under contact 0 (our own account, as devsync.go), with
		// or without contacts; an older update still queued for one is
		// superseded.
		own, err := m.ownOtherDevices(tx)
		if err != nil {
			return err
		}
		id := make([]byte, wire.MessageIDSize)
		if _, err := io.ReadFull(m.rand, id); err != nil {
			return err
		}
		bare := wire.Marshal(&wirepb.Payload{Version: wire.Version, SenderCard: card, Body: &wirepb.Payload_Card{Card: &wirepb.CardUpdate{DeviceCards: devCards}}})
		for _, d := range own {
			queued, err := tx.DeviceOutbox(d.PeerID)
			if err != nil {
				return err
			}
			for _, it := range queued {
				if it.Own && strings.HasPrefix(it.MessageID, cardItemPrefix) {
					if err := tx.DeleteDeviceItem(d.PeerID, it.ContactID, it.MessageID); err != nil {
						return err
					}
				}
			}
			if err := tx.EnqueueDevice(store.DeviceItem{ContactID: 0, PeerID: d.PeerID, Own: true, MessageID: cardItemPrefix + hex.EncodeToString(id),
				Payload: bare, NextAttempt: now}); err != nil {
				return err
			}
		}
		return b.flush(tx)
	})
	if err == nil {
		m.wake()
	}
	return err
}

// ownCardUpdate takes a card update from our own device peer (its card,
// already noted by the caller): the cards of our other devices it carries
// are kept too.
func (m *Messenger) ownCardUpdate(tx *store.Tx, l *devices.List, peer string, u *wirepb.CardUpdate) error {
	for _, b := range u.DeviceCards {
		card, err := identity.ParseSignedCard(b)
		if err != nil || card.AccountID() != m.acct || len(card.Devices) == 0 || !l.IsActive(card.Devices[0].PeerID) || card.Devices[0].PeerID == m.selfPeer() {
			continue
		}
		if err := m.noteDeviceCard(tx, 0, m.acct, card, b); err != nil {
			return err
		}
	}
	return nil
}

// ownDeviceCards returns the own cards we hold of our account's other
// active devices (as they sent them to us).
func (m *Messenger) ownDeviceCards(tx *store.Tx) ([][]byte, error) {
	own, err := m.ownOtherDevices(tx)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, d := range own {
		if len(out) == wire.MaxCardUpdateCards {
			break
		}
		b, err := tx.DeviceCard(0, d.PeerID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if card, err := identity.ParseSignedCard(b); err == nil && card.AccountID() == m.acct && len(card.Devices) > 0 &&
			card.Devices[0].PeerID == d.PeerID && len(b) <= wire.MaxCardSize {
			out = append(out, b)
		}
	}
	return out, nil
}

// receiveCardUpdate keeps the own cards of contact c's devices that an
// update carried: each must be signed by c's account and name first a
// device c's current card lists.
func (m *Messenger) receiveCardUpdate(tx *store.Tx, c *store.Contact, u *wirepb.CardUpdate) error {
	held, err := identity.ParseSignedCard(c.Card)
	if err != nil {
		return nil
	}
	for _, b := range u.DeviceCards {
		card, err := identity.ParseSignedCard(b)
		if err != nil || card.AccountID() != c.AccountID || len(card.Devices) == 0 || !held.HasDevice(card.Devices[0].PeerID) {
			m.log.Info("deviceCardIgnored", "contact", identity.Short(c.AccountID))
			continue
		}
		if err := m.noteDeviceCard(tx, c.ID, c.AccountID, card, b); err != nil {
			return err
		}
	}
	return nil
}

// cardApplied is called once contact c's card was replaced by card (old:
// the card it held, oldPeer its primary device then): what was queued for
// a device the new card no longer lists is dropped, and a dropped primary
// device is replaced (switchPrimary). rx is the receive batch, if any.
func (m *Messenger) cardApplied(tx *store.Tx, rx *batch, c *store.Contact, old, card *identity.Card, oldPeer string) error {
	if old == nil {
		return nil
	}
	for _, d := range old.Devices {
		if d.PeerID == "" || card.HasDevice(d.PeerID) || d.PeerID == oldPeer {
			continue
		}
		// Its queue goes; its session stays, as the mark that this
		// device was the contact's and is revoked: after a restart the
		// device index rebuilds its refusals from such sessions
		// (devices.go), so what the device still sends is refused as
		// revoked, not as a stranger's.
		if err := tx.DeleteDeviceItems(d.PeerID); err != nil {
			return err
		}
		m.log.Info("deviceDropped", "contact", identity.Short(c.AccountID), "device", shortPeer(d.PeerID))
	}
	if oldPeer != "" && oldPeer != c.PeerID && !card.HasDevice(oldPeer) {
		return m.switchPrimary(tx, rx, c, oldPeer)
	}
	return nil
}

// switchPrimary makes c.PeerID (already the card's first device) contact
// c's primary device in place of the revoked oldPeer: the new primary's
// device session becomes the contact's session (none: the next message
// starts one from the card), the outbox, sealed on the revoked device's
// session, is dropped, and the new primary's own copies are due at once
// (adoptPrimaryQueue moves them to the outbox).
func (m *Messenger) switchPrimary(tx *store.Tx, rx *batch, c *store.Contact, oldPeer string) error {
	np := c.PeerID
	k := ackKey{c.ID, np}
	var rec *wirepb.SessionRecord
	var err error
	if rx != nil {
		rec, err = rx.dev.get(tx, k)
	} else {
		rec, err = loadDevRecord(tx, c.ID, np)
	}
	if err != nil {
		return err
	}
	if err := tx.DeleteDeviceSession(c.ID, np); err != nil {
		return err
	}
	if rx != nil {
		rx.dev.drop(k)
		rx.setRecord(c.ID, rec)
	} else if err := tx.PutSession(c.ID, wire.Marshal(rec)); err != nil {
		return err
	}
	if err := tx.DeleteDeviceItems(oldPeer); err != nil {
		return err
	}
	// What is still queued for any listed device.
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil {
		return err
	}
	copies := map[string]bool{}
	for _, d := range card.Devices {
		if d.PeerID == m.selfPeer() {
			continue
		}
		items, err := tx.DeviceOutbox(d.PeerID)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.ContactID == c.ID && !it.Own {
				copies[it.MessageID] = true
			}
		}
		if d.PeerID == np && len(items) > 0 {
			if err := tx.RescheduleDevice(np, 0, m.now(), ""); err != nil {
				return err
			}
		}
	}
	queued, err := tx.Outbox(c.ID)
	if err != nil {
		return err
	}
	for _, it := range queued {
		if err := tx.DeleteOutbox(c.ID, it.MessageID); err != nil {
			return err
		}
		if strings.HasPrefix(it.MessageID, ackItemPrefix) || strings.HasPrefix(it.MessageID, groupItemPrefix) || copies[it.MessageID] {
			continue
		}
		// A text only the revoked device was to get, that no device acked:
		// failed, so the user can retry it (to the devices listed now).
		msg, err := tx.Message(c.ID, true, it.MessageID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if stateRank[msg.State] < stateRank[StateDelivered] {
			if err := tx.SetMessageState(c.ID, true, it.MessageID, StateFailed); err != nil {
				return err
			}
			if rx != nil {
				rx.events = append(rx.events, Event{Type: EventState, ContactID: c.ID, MessageID: it.MessageID, State: StateFailed})
			}
		}
	}
	m.log.Info("primaryDeviceReplaced", "contact", identity.Short(c.AccountID), "revoked", shortPeer(oldPeer), "primary", shortPeer(np))
	return nil
}

// adoptPrimaryQueue moves the copies queued for device peer, which has
// become contact cid's primary device, to the contact's outbox, sealed on
// the contact's session (the primary's); what the outbox holds already
// under the same id stays.
func (m *Messenger) adoptPrimaryQueue(ctx context.Context, peer string, cid int64) error {
	card, _ := m.card(ctx)
	now := m.now()
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.Contact(cid)
		if err != nil || c.PeerID != peer {
			return err
		}
		items, err := tx.DeviceOutbox(peer)
		if err != nil {
			return err
		}
		queued, err := tx.Outbox(cid)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, it := range queued {
			have[it.MessageID] = true
		}
		b := newBatch()
		rec, err := b.record(tx, cid)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.ContactID != cid || it.Own {
				continue
			}
			if err := tx.DeleteDeviceItem(peer, cid, it.MessageID); err != nil {
				return err
			}
			if have[it.MessageID] {
				continue
			}
			p, err := wire.ParsePayload(it.Payload)
			if err != nil {
				continue
			}
			id := make([]byte, wire.MessageIDSize)
			if strings.HasPrefix(it.MessageID, ackItemPrefix) {
				if _, err := io.ReadFull(m.rand, id); err != nil {
					return err
				}
			} else if id, err = hex.DecodeString(strings.TrimPrefix(it.MessageID, groupItemPrefix)); err != nil || len(id) != wire.MessageIDSize {
				continue
			}
			if (len(rec.Sessions) == 0 || len(rec.Sessions[0].Initiation) > 0) && p.GetAck() == nil && len(p.SenderCard) == 0 {
				p.SenderCard = card // a session starts: the device learns who we are
			}
			s, err := m.encrypt(rec, c, id, p)
			if err != nil {
				return err
			}
			if err := tx.Enqueue(store.OutboxItem{MessageID: it.MessageID, ContactID: cid, Payload: s.bytes, NextAttempt: now}); err != nil {
				return err
			}
		}
		b.setRecord(cid, rec)
		return b.flush(tx)
	})
	if err == nil {
		m.wake()
	}
	return err
}

// primaryCard returns the card whose mailbox hosts and mesh mailbox reach
// contact c's primary device: c's card when that device made it, else the
// primary device's own card if we hold one. (A card from another device of
// the contact that changed the device list replaces the contact's card,
// but its mailbox hosts and mesh mailbox are that other device's.)
func (m *Messenger) primaryCard(ctx context.Context, c *store.Contact) (*identity.Card, error) {
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil || len(card.Devices) == 0 || card.Devices[0].PeerID == c.PeerID || c.PeerID == "" {
		return card, err
	}
	var own *identity.Card
	_ = m.st.View(ctx, func(tx *store.Tx) error {
		b, err := tx.DeviceCard(c.ID, c.PeerID)
		if err == nil {
			if dc, err := identity.ParseSignedCard(b); err == nil && dc.AccountID() == c.AccountID && len(dc.Devices) > 0 && dc.Devices[0].PeerID == c.PeerID {
				own = dc
			}
		}
		return nil
	})
	if own != nil {
		return own, nil
	}
	return card, nil
}
