package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Fan-out to every device of an account (issue 17), as Signal's Sesame
// does: one double-ratchet session per (contact, device), each device its
// own copy of every message.
//
//   - A contact's primary device is the one stored as its peer id (the
//     first device of its card, kept while the card lists it). Messages
//     to it take the ordinary path (outbox, mailbox hosts, mesh); its
//     session is store.Session.
//   - Every other device the contact's card lists gets its copy through
//     the device outbox (store.DeviceItem): the plaintext payload, sealed
//     at each attempt on that device's own session
//     (store.DeviceSession). A device we have no session with yet is
//     asked for one of its one-time prekeys over /samizdat/prekey/1 when
//     it is first reached (the card carries the prekeys of the device that
//     signed it only).
//   - Sent copies: each text we send is also queued, as a SentCopy naming
//     the contact, for each other active device of our own account
//     (contact id 0 in the session table: our account is the "contact"
//     whose devices are our other devices). The device shows it in the
//     chat with that contact, as sent.
//   - A message is "delivered" as soon as one device of the contact acks
//     it; each device's copy stays queued until that device acks it (one
//     device's ack never removes another's copy). Read receipts count
//     from any device.
//   - Anything from any listed device of a contact lands in the one chat
//     with it; messages are deduplicated by id (store.InsertMessage).
//   - A device the contact's card (or our device list) no longer lists
//     gets nothing more: its queued copies are dropped when next due.

// fanRetryLimit bounds attempts on a device copy refused as unreadable
// (its session restarted each time) before it is dropped.
const fanRetryLimit = 5

// ackKey names whom an ack goes to: a contact's device (peer "": the
// primary one).
type ackKey struct {
	cid  int64
	peer string
}

// ackKeyOf is the key of an ack to c for the envelope being processed.
func (b *batch) ackKeyOf(c *store.Contact) ackKey {
	if b.peer == "" || b.peer == c.PeerID {
		return ackKey{cid: c.ID}
	}
	return ackKey{c.ID, b.peer}
}

// devRecords memoises, within one transaction, the session records of
// devices other than contacts' primary ones (contact 0: our own).
type devRecords struct {
	recs  map[ackKey]*wirepb.SessionRecord
	dirty map[ackKey]bool
}

func (d *devRecords) get(tx *store.Tx, k ackKey) (*wirepb.SessionRecord, error) {
	rec, ok := d.recs[k]
	if !ok {
		var err error
		if rec, err = loadDevRecord(tx, k.cid, k.peer); err != nil {
			return nil, err
		}
		if d.recs == nil {
			d.recs, d.dirty = map[ackKey]*wirepb.SessionRecord{}, map[ackKey]bool{}
		}
		d.recs[k] = rec
	}
	return proto.Clone(rec).(*wirepb.SessionRecord), nil
}

func (d *devRecords) set(k ackKey, rec *wirepb.SessionRecord) {
	if d.recs == nil {
		d.recs, d.dirty = map[ackKey]*wirepb.SessionRecord{}, map[ackKey]bool{}
	}
	d.recs[k], d.dirty[k] = rec, true
}

func (d *devRecords) forget(cid int64) {
	for k := range d.recs {
		if k.cid == cid {
			delete(d.recs, k)
			delete(d.dirty, k)
		}
	}
}

func (d *devRecords) flush(tx *store.Tx) error {
	for k := range d.dirty {
		rec := d.recs[k]
		if len(rec.Sessions) > maxSessionsPerContact {
			rec.Sessions = rec.Sessions[:maxSessionsPerContact]
		}
		if err := tx.PutDeviceSession(k.cid, k.peer, wire.Marshal(rec)); err != nil {
			return err
		}
	}
	clear(d.dirty)
	return nil
}

func loadDevRecord(tx *store.Tx, cid int64, peer string) (*wirepb.SessionRecord, error) {
	b, err := tx.DeviceSession(cid, peer)
	if errors.Is(err, store.ErrNotFound) {
		return &wirepb.SessionRecord{Version: wire.Version}, nil
	} else if err != nil {
		return nil, err
	}
	return wire.ParseSessionRecord(b)
}

// loadDeviceRecord reads the session record with device peer of c (""
// or c's peer id: the primary one), outside a batch.
func loadDeviceRecord(tx *store.Tx, c *store.Contact, peer string) (*wirepb.SessionRecord, error) {
	if peer == "" || peer == c.PeerID {
		return loadRecord(tx, c.ID)
	}
	return loadDevRecord(tx, c.ID, peer)
}

// recordFor returns a copy of the session record with device peer of c.
func (b *batch) recordFor(tx *store.Tx, c *store.Contact, peer string) (*wirepb.SessionRecord, error) {
	if peer == "" || peer == c.PeerID {
		return b.record(tx, c.ID)
	}
	return b.dev.get(tx, ackKey{c.ID, peer})
}

// setRecordFor records the changed session record with device peer of c.
func (b *batch) setRecordFor(c *store.Contact, peer string, rec *wirepb.SessionRecord) {
	if peer == "" || peer == c.PeerID {
		b.setRecord(c.ID, rec)
		return
	}
	b.dev.set(ackKey{c.ID, peer}, rec)
}

// deleteQueued removes the copy of message id queued for the device of c
// that acked (or read) it: the outbox item for the primary device, the
// device item for another.
func (m *Messenger) deleteQueued(tx *store.Tx, c *store.Contact, peer, id string) error {
	if peer == "" || peer == c.PeerID {
		return tx.DeleteOutbox(c.ID, id)
	}
	return tx.DeleteDeviceItem(peer, c.ID, id)
}

// queueDeviceAck queues the ack of mail fetched from a mailbox that came
// from a contact's non-primary device: it goes to that device.
func (m *Messenger) queueDeviceAck(tx *store.Tx, c *store.Contact, peer string, firstID []byte, p *wirepb.Payload) error {
	bare := proto.Clone(p).(*wirepb.Payload)
	bare.SenderCard = nil
	return tx.EnqueueDevice(store.DeviceItem{ContactID: c.ID, PeerID: peer, MessageID: ackItemPrefix + hex.EncodeToString(firstID),
		Payload: wire.Marshal(bare), NextAttempt: m.now()})
}

// trialDevices tries the sessions with c's other devices on a sealed
// envelope; on success rx.peer names the device.
func (m *Messenger) trialDevices(tx *store.Tx, rx *batch, c *store.Contact, env *wirepb.Envelope) (*wirepb.SessionRecord, []byte, error) {
	peers, err := tx.DeviceSessionPeers(c.ID)
	if err != nil {
		return nil, nil, err
	}
	if len(peers) < 2 {
		return nil, nil, permanent(ErrNoSession)
	}
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil {
		return nil, nil, permanent(ErrNoSession)
	}
	for _, p := range peers {
		if p == c.PeerID {
			continue
		}
		if !card.HasDevice(p) {
			// Revoked: what it left in a mailbox is not read, even on a
			// session we still hold with it.
			continue
		}
		rec, err := rx.recordFor(tx, c, p)
		if err != nil {
			return nil, nil, err
		}
		if len(rec.Sessions) == 0 {
			continue
		}
		m.sealedTrials.Add(1)
		if plain, _, err := m.decrypt(rec, nil, nil, env); err == nil {
			rx.peer = p
			return rec, plain, nil
		}
	}
	return nil, nil, permanent(ErrNoSession)
}

// selfPeer is this device's peer id.
func (m *Messenger) selfPeer() string {
	if m.tr != nil {
		return m.tr.PeerID()
	}
	return m.cfg.PeerID
}

// ownOtherDevices lists the other active devices of our account.
func (m *Messenger) ownOtherDevices(tx *store.Tx) ([]identity.Device, error) {
	l, err := devices.Load(tx)
	if err != nil {
		return nil, err
	}
	self := m.selfPeer()
	var out []identity.Device
	for _, d := range l.Active() {
		if d.PeerID != self && d.PeerID != "" {
			out = append(out, d)
		}
	}
	return out, nil
}

// fanOut queues, beside the primary device's copy, a copy of payload p
// (message msgID to c) for each other device c's card lists, and, for a
// text, a sent copy for each of our own other devices. Called inside the
// send transaction.
func (m *Messenger) fanOut(tx *store.Tx, c *store.Contact, msgID string, p *wirepb.Payload, now time.Time) error {
	bare := proto.Clone(p).(*wirepb.Payload)
	bare.SenderCard, bare.InviteProof = nil, nil // attached again when a device's session starts
	if card, err := identity.ParseSignedCard(c.Card); err == nil {
		var b []byte
		for _, d := range card.Devices {
			if d.PeerID == "" || d.PeerID == c.PeerID || d.PeerID == m.selfPeer() {
				continue
			}
			if b == nil {
				b = wire.Marshal(bare)
			}
			if err := tx.EnqueueDevice(store.DeviceItem{ContactID: c.ID, PeerID: d.PeerID, MessageID: msgID, Payload: b, NextAttempt: now}); err != nil {
				return err
			}
		}
	}
	t := p.GetText()
	if t == nil {
		return nil
	}
	own, err := m.ownOtherDevices(tx)
	if err != nil || len(own) == 0 {
		return err
	}
	b := wire.Marshal(&wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Sent{Sent: &wirepb.SentCopy{ToAccount: c.AccountID, Text: t}}})
	for _, d := range own {
		if err := tx.EnqueueDevice(store.DeviceItem{ContactID: c.ID, PeerID: d.PeerID, Own: true, MessageID: msgID, Payload: b, NextAttempt: now}); err != nil {
			return err
		}
	}
	return nil
}

// fromOwnDevice reports whether an envelope that matches no contact comes
// from another device of our own account: an initiation under our own
// identity, or a stream from a device our list names (active or not:
// receiveOwn refuses a revoked one by name).
func (m *Messenger) fromOwnDevice(tx *store.Tx, peer string, in *handshake.Initiation) bool {
	if in != nil {
		return in.Identity.Equal(m.id.Public())
	}
	if peer == "" || peer == m.selfPeer() {
		return false
	}
	l, err := devices.Load(tx)
	return err == nil && l.Find(peer) != nil && l.Find(peer).Device.PeerID == peer
}

// receiveOwn takes an envelope from another device of our account: a
// sent copy, shown as sent in the chat with the contact it names. A device
// our list does not hold as active (revoked) is refused.
func (m *Messenger) receiveOwn(tx *store.Tx, rx *batch, peer string, in *handshake.Initiation, env *wirepb.Envelope, resp *wirepb.Response) error {
	l, err := devices.Load(tx)
	if err != nil {
		return err
	}
	if peer == "" || !l.IsActive(peer) {
		m.log.Info("revokedDeviceRefused", "device", shortPeer(peer))
		return permanent(ErrRevokedDevice)
	}
	k := ackKey{0, peer}
	rec, err := rx.dev.get(tx, k)
	if err != nil {
		return err
	}
	var prekeys *handshake.Prekeys
	if in != nil {
		b, err := tx.Blob(blobPrekeys)
		if err != nil {
			return err
		}
		if prekeys, err = handshake.UnmarshalPrekeys(b); err != nil {
			return err
		}
	}
	plain, consumed, err := m.decrypt(rec, in, prekeys, env)
	if err != nil {
		return permanent(err)
	}
	unpadded, err := wire.Unpad(plain)
	if err != nil {
		return permanent(fmt.Errorf("%w: %v", ErrBadMessage, err))
	}
	p, err := wire.ParsePayload(unpadded)
	if err != nil {
		return permanent(fmt.Errorf("%w: %v", ErrBadMessage, err))
	}
	sent := p.GetSent()
	if sent == nil || hex.EncodeToString(sent.Text.MessageId) != hex.EncodeToString(env.MessageId) {
		return permanent(fmt.Errorf("%w: not a sent copy", ErrBadMessage))
	}
	// All checks passed: write.
	rx.dev.set(k, rec)
	if consumed {
		if err := tx.PutBlob(blobPrekeys, prekeys.Marshal()); err != nil {
			return err
		}
	}
	if len(p.SenderCard) > 0 {
		if card, err := identity.ParseSignedCard(p.SenderCard); err == nil {
			if err := m.noteDeviceCard(tx, 0, m.acct, card, p.SenderCard); err != nil {
				return err
			}
		}
	}
	if e := l.Find(peer); e != nil {
		e.LastSeen = m.now()
		if err := devices.Save(tx, l); err != nil {
			return err
		}
	}
	resp.Status = wirepb.Response_STATUS_OK // our own device needs no ack: the stream is authenticated
	c, err := tx.ContactByAccount(sent.ToAccount)
	if errors.Is(err, store.ErrNotFound) {
		// A contact added on the other device since linking (contacts
		// are not synced after it): nothing to show it in.
		m.log.Info("sentCopyUnknownContact", "contact", identity.Short(sent.ToAccount))
		return nil
	} else if err != nil {
		return err
	}
	t := sent.Text
	msgID := hex.EncodeToString(t.MessageId)
	at := time.UnixMilli(t.SentAtUnixMs)
	msg := &store.Message{ID: msgID, ContactID: c.ID, Outgoing: true, Body: t.Body, SentAt: at, At: at, State: StateSent}
	inserted, err := tx.InsertMessage(msg)
	if err != nil {
		return err
	}
	if inserted {
		rx.events = append(rx.events, Event{Type: EventMessage, ContactID: c.ID, MessageID: msgID, State: StateSent})
	}
	return nil
}

// flushDevices starts the delivery of each device copy that is due, one
// delivery per device at a time.
func (m *Messenger) flushDevices(ctx context.Context) {
	var due []string
	now := m.now()
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { due, err = tx.DueDevicePeers(now); return err }); err != nil {
		return
	}
	for _, peer := range due {
		key := "dev/" + peer
		m.flightMu.Lock()
		busy := m.devFlights[key]
		if !busy {
			if m.devFlights == nil {
				m.devFlights = map[string]bool{}
			}
			m.devFlights[key] = true
		}
		m.flightMu.Unlock()
		if busy {
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			err := m.deliverDevice(ctx, peer)
			m.flightMu.Lock()
			delete(m.devFlights, key)
			m.flightMu.Unlock()
			if err != nil && ctx.Err() == nil {
				m.log.Debug("deviceDeliveryDeferred", "device", shortPeer(peer), "err", err)
			}
		}()
	}
}

// deviceTarget is where a device's copies go, and with whose keys.
type deviceTarget struct {
	contact *store.Contact // the contact (own: a stand-in for our account)
	own     bool
	device  identity.Device
	ident   keys.PublicIdentity // whose prekeys the device must hand out
	cid     int64               // session table key: the contact's id, or 0 for our own account
}

// target finds the device peer among the contact's card (or our own
// device list); ok is false when it is listed no more (revoked).
func (m *Messenger) target(tx *store.Tx, it store.DeviceItem) (deviceTarget, bool, error) {
	if it.Own {
		l, err := devices.Load(tx)
		if err != nil {
			return deviceTarget{}, false, err
		}
		if !l.IsActive(it.PeerID) {
			return deviceTarget{}, false, nil
		}
		e := l.Find(it.PeerID)
		card, _ := m.currentCard()
		return deviceTarget{contact: &store.Contact{AccountID: m.acct, Card: card}, own: true, device: e.Device, ident: m.id.Public()}, true, nil
	}
	c, err := tx.Contact(it.ContactID)
	if err != nil {
		return deviceTarget{}, false, err
	}
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil {
		return deviceTarget{}, false, nil
	}
	for _, d := range card.Devices {
		if d.PeerID == it.PeerID && d.PeerID != c.PeerID {
			return deviceTarget{contact: c, device: d, cid: c.ID, ident: card.Identity}, true, nil
		}
	}
	return deviceTarget{}, false, nil
}

// deliverDevice sends the copies queued for one device on one stream,
// starting a session with it first if there is none. A device that cannot
// be reached gets them through the mailbox hosts its own card names.
func (m *Messenger) deliverDevice(ctx context.Context, peer string) error {
	var items []store.DeviceItem
	var tg deviceTarget
	var listed bool
	var rec *wirepb.SessionRecord
	var devCard *identity.Card
	now := m.now()
	err := m.st.View(ctx, func(tx *store.Tx) (err error) {
		if items, err = tx.DeviceOutbox(peer); err != nil || len(items) == 0 {
			return err
		}
		if tg, listed, err = m.target(tx, items[0]); err != nil || !listed {
			return err
		}
		devCard = m.deviceCard(tx, tg, peer)
		rec, err = loadDevRecord(tx, tg.cid, peer)
		return err
	})
	if err != nil || len(items) == 0 || items[0].NextAttempt.After(now) {
		return err
	}
	if !listed {
		// Revoked (or dropped from the contact's card): nothing more goes there.
		return m.st.Update(ctx, func(tx *store.Tx) error { return tx.DeleteDeviceItems(peer) })
	}
	if len(items) > outboxBatch {
		items = items[:outboxBatch]
	}
	if m.tr == nil {
		return ErrNotReachable
	}
	m.tr.AddAddrs(peer, tg.device.Addrs)
	var fresh *wirepb.SessionEntry
	if len(rec.Sessions) == 0 {
		// No session with this device yet: a contact's card carries the
		// prekeys of the device that signed it only, so ask the device
		// itself for one-time prekeys, else use its own card's.
		cctx, cancel := context.WithTimeout(ctx, claimTimeout)
		b, err := m.claimBundle(cctx, peer)
		cancel()
		if err == nil && !b.Identity.Equal(tg.ident) {
			err = fmt.Errorf("%w: claimed prekeys of another identity", handshake.ErrMalformed)
		}
		if err != nil && devCard != nil && devCard.Bundle != nil {
			b, err = devCard.Bundle, nil
		}
		if err != nil {
			m.rescheduleDevice(ctx, peer, items[0].Attempts, err)
			return err
		}
		in, sess, err := handshake.Initiate(m.rand, m.id, b, m.cfg.Ratchet)
		if err != nil {
			return err
		}
		fresh = &wirepb.SessionEntry{Ratchet: sess.Marshal(), Initiation: in.Marshal()}
	}
	dctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	s, err := m.tr.OpenStream(dctx, peer, ProtocolMsg)
	cancel()
	if err != nil {
		m.depositDevice(ctx, peer, tg, devCard, items, fresh)
		m.rescheduleDevice(ctx, peer, items[0].Attempts, err)
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(m.cfg.StreamTimeout))
	frames, ids, err := m.sealDeviceItems(ctx, peer, tg, items, fresh)
	if err != nil {
		_ = s.Reset()
		return err
	}
	werr := make(chan error, 1)
	go func() {
		for _, f := range frames {
			if err := wire.WriteFrame(s, f); err != nil {
				werr <- err
				return
			}
		}
		werr <- s.CloseWrite()
	}()
	resps := make([]*wirepb.Response, 0, len(items))
	for i := range items {
		b, err := wire.ReadFrame(s)
		if err != nil {
			break
		}
		r, err := wire.ParseResponse(b)
		if err != nil || hex.EncodeToString(r.MessageId) != ids[i] {
			m.fault(FaultBadResponse, shortPeer(peer))
			break
		}
		resps = append(resps, r)
	}
	if len(resps) < len(items) {
		_ = s.Reset()
	}
	<-werr
	if err := m.applyDeviceResponses(ctx, peer, tg, items[:len(resps)], resps); err != nil {
		return err
	}
	if len(resps) < len(items) {
		m.rescheduleDevice(ctx, peer, items[len(resps)].Attempts, errors.New("delivery interrupted"))
		return errors.New("delivery interrupted")
	}
	m.wake() // more may have been queued meanwhile
	return nil
}

// sealDeviceItems encrypts the copies on the device's session (fresh, if
// set, starts it) in one transaction; it returns the envelopes and their
// ids (hex), in order.
func (m *Messenger) sealDeviceItems(ctx context.Context, peer string, tg deviceTarget, items []store.DeviceItem, fresh *wirepb.SessionEntry) (frames [][]byte, ids []string, err error) {
	card, _ := m.card(ctx)
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		frames, ids = frames[:0], ids[:0]
		b := newBatch()
		rec, err := b.dev.get(tx, ackKey{tg.cid, peer})
		if err != nil {
			return err
		}
		if len(rec.Sessions) == 0 && fresh != nil {
			rec.Sessions = []*wirepb.SessionEntry{proto.Clone(fresh).(*wirepb.SessionEntry)}
		} else if len(rec.Sessions) == 0 {
			return ErrNoSession
		}
		for _, it := range items {
			p, err := wire.ParsePayload(it.Payload)
			if err != nil {
				return err
			}
			if len(rec.Sessions[0].Initiation) > 0 && p.GetAck() == nil {
				p.SenderCard = card // the device learns our own card (mailbox hosts, prekeys)
			}
			id := make([]byte, wire.MessageIDSize)
			if strings.HasPrefix(it.MessageID, ackItemPrefix) {
				if _, err := io.ReadFull(m.rand, id); err != nil {
					return err
				}
			} else if id, err = hex.DecodeString(strings.TrimPrefix(it.MessageID, groupItemPrefix)); err != nil || len(id) != wire.MessageIDSize {
				return fmt.Errorf("%w: bad message id in the device outbox", ErrBadMessage)
			}
			sealed, err := m.encrypt(rec, tg.contact, id, p)
			if err != nil {
				return err
			}
			frames, ids = append(frames, sealed.bytes), append(ids, hex.EncodeToString(id))
		}
		b.dev.set(ackKey{tg.cid, peer}, rec)
		return b.flush(tx)
	})
	return frames, ids, err
}

// deviceCard returns the card device peer last sent us itself, if any.
func (m *Messenger) deviceCard(tx *store.Tx, tg deviceTarget, peer string) *identity.Card {
	b, err := tx.DeviceCard(tg.cid, peer)
	if err != nil {
		return nil
	}
	card, err := identity.ParseSignedCard(b)
	if err != nil || !card.Identity.Equal(tg.ident) || len(card.Devices) == 0 || card.Devices[0].PeerID != peer {
		return nil
	}
	return card
}

// otherDevicesCard reports whether card, newer than old, is the card of
// another device of contact c than its primary one, with the same device
// list: it does not replace the contact's card, whose prekeys and mailbox
// hosts must stay the primary device's (serials of different devices'
// cards are not comparable).
func otherDevicesCard(c *store.Contact, old, card *identity.Card) bool {
	return len(card.Devices) > 0 && card.Devices[0].PeerID != c.PeerID && card.HasDevice(c.PeerID) &&
		card.DeviceVersion <= old.DeviceVersion
}

// noteDeviceCard keeps a card of contact cid (0: our own account) as the
// card of the device it lists first — the device that made it, whose
// prekeys and mailbox hosts it carries — if newer than the one held: they
// reach that device while it is offline. (Whichever device passed it on:
// the account signed it.)
func (m *Messenger) noteDeviceCard(tx *store.Tx, cid int64, account string, card *identity.Card, signed []byte) error {
	if card == nil || len(card.Devices) == 0 || card.AccountID() != account {
		return nil
	}
	peer := card.Devices[0].PeerID
	if b, err := tx.DeviceCard(cid, peer); err == nil {
		if old, err := identity.ParseSignedCard(b); err == nil && old.Serial >= card.Serial {
			return nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return tx.PutDeviceCard(cid, peer, signed)
}

// depositDevice leaves the copies for an unreachable device with the
// mailbox hosts its own card names, under its own mailbox id: that
// device's fetch and ack leave the other devices' copies alone. Each copy
// is deposited once per run and card; the copies stay queued until the
// device acks them.
func (m *Messenger) depositDevice(ctx context.Context, peer string, tg deviceTarget, card *identity.Card, items []store.DeviceItem, fresh *wirepb.SessionEntry) {
	if card == nil || len(card.Mailboxes) == 0 || tg.own {
		return // sent copies go direct only: a sealed box under our own identity names no contact
	}
	key := func(it store.DeviceItem) string { return fmt.Sprint("dev/", peer, "/", card.Serial, "/", it.MessageID) }
	m.mbMu.Lock()
	if m.deposited == nil || len(m.deposited) > maxDepositedMemo {
		m.deposited = map[string]bool{}
	}
	var todo []store.DeviceItem
	for _, it := range items {
		if !m.deposited[key(it)] {
			todo = append(todo, it)
		}
	}
	m.mbMu.Unlock()
	if len(todo) == 0 {
		return
	}
	frames, _, err := m.sealDeviceItems(ctx, peer, tg, todo, fresh)
	if err != nil {
		return
	}
	envs := make([][]byte, len(frames))
	for i, f := range frames {
		if envs[i], err = m.sealFor(card.Identity, f); err != nil {
			return
		}
	}
	accepted := 0
	for i, h := range card.Mailboxes {
		if i == maxDepositHosts {
			break
		}
		var id mailbox.ID
		copy(id[:], h.ID)
		dctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
		n, err := mailbox.DepositBatch(dctx, m.opener(MailboxHost{PeerID: h.PeerID, Addrs: h.Addrs}), h.PeerID, id, envs)
		cancel()
		accepted = max(accepted, n)
		if err != nil {
			m.log.Info("depositRefused", "host", shortPeer(h.PeerID), "err", err)
		}
	}
	m.mbMu.Lock()
	for _, it := range todo[:accepted] {
		m.deposited[key(it)] = true
	}
	m.mbMu.Unlock()
}

// applyDeviceResponses records what a device said about each copy: an ack
// (from a contact's device: decrypted as any ack, which removes that
// device's copy and makes the message delivered; from our own device: the
// OK itself) removes it; a refusal as unreadable restarts the session
// and retries, a few times; "retry" reschedules.
func (m *Messenger) applyDeviceResponses(ctx context.Context, peer string, tg deviceTarget, items []store.DeviceItem, rs []*wirepb.Response) error {
	var rx *batch
	now := m.now()
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		rx = newBatch()
		restart := false
		for i, r := range rs {
			it := items[i]
			switch r.Status {
			case wirepb.Response_STATUS_OK:
				if tg.own || strings.HasPrefix(it.MessageID, ackItemPrefix) || len(r.Ack) == 0 {
					if err := tx.DeleteDeviceItem(peer, it.ContactID, it.MessageID); err != nil {
						return err
					}
					continue
				}
				if rx.seenAcks[string(r.Ack)] {
					continue
				}
				rx.seenAcks[string(r.Ack)] = true
				env, err := wire.ParseEnvelope(r.Ack)
				if err == nil {
					var scratch wirepb.Response
					err = m.processEnvelope(tx, rx, peer, env, &scratch)
				}
				if err != nil && !isPermanent(err) {
					return err
				} else if err != nil {
					m.fault(FaultUnreadableAck, shortPeer(peer), "err", err)
				}
			case wirepb.Response_STATUS_REJECTED:
				m.fault(FaultRefused, shortPeer(peer), "reason", r.Error)
				if r.Error == "replayed message" || it.Attempts+1 >= fanRetryLimit {
					if err := tx.DeleteDeviceItem(peer, it.ContactID, it.MessageID); err != nil {
						return err
					}
					continue
				}
				restart = true
			}
		}
		if restart {
			// The device lost our session: the next attempt starts afresh.
			if err := tx.DeleteDeviceSession(tg.cid, peer); err != nil {
				return err
			}
		}
		if err := rx.flush(tx); err != nil {
			return err
		}
		// Copies sent but not acked (the ack did not cover them, or was
		// unreadable) are retried later, with what was queued meanwhile.
		left, err := tx.DeviceOutbox(peer)
		if err != nil {
			return err
		}
		sent := map[string]bool{}
		for _, it := range items {
			sent[it.MessageID] = true
		}
		for _, it := range left {
			if sent[it.MessageID] {
				n := it.Attempts + 1
				return tx.RescheduleDevice(peer, n, now.Add(m.backoff(n)), "not acked")
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range rx.events {
		m.emit(e)
	}
	return nil
}

// rescheduleDevice puts a device's queue off after a failed attempt.
func (m *Messenger) rescheduleDevice(ctx context.Context, peer string, attempts int, cause error) {
	if ctx.Err() != nil {
		return
	}
	n := attempts + 1
	next := m.now().Add(m.backoff(n))
	if err := m.st.Update(ctx, func(tx *store.Tx) error { return tx.RescheduleDevice(peer, n, next, cause.Error()) }); err != nil && ctx.Err() == nil {
		m.log.Warn("rescheduleFailed", "err", err)
	}
}

// claimBundle asks device peer for one pair of its one-time prekeys over
// /samizdat/prekey/1 (prekeys.go serves it): the bundle to start a
// session with that very device.
func (m *Messenger) claimBundle(ctx context.Context, peer string) (*handshake.Bundle, error) {
	s, err := m.tr.OpenStream(ctx, peer, ProtocolPrekey)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	if err := wire.WriteFrame(s, []byte{prekeyProtoVersion}); err != nil {
		_ = s.Reset()
		return nil, err
	}
	b, err := wire.ReadFrame(s)
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	if len(b) == 0 {
		return nil, handshake.ErrNoOneTimePrekeys
	}
	if len(b) > maxClaimFrame {
		return nil, handshake.ErrTooLarge
	}
	bundle, err := handshake.ParseBundle(b)
	if err != nil {
		return nil, err
	}
	if len(bundle.OneTimePrekeys) != 1 || len(bundle.KEMOneTimePrekeys) != 1 {
		return nil, fmt.Errorf("%w: claimed prekeys not one pair", handshake.ErrMalformed)
	}
	return bundle, nil
}
