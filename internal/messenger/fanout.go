package messenger

import (
	"encoding/hex"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
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

// errRefusedRestart is the last error of a device queue whose copies were
// refused as unreadable (the session restarted): the attempts count such
// refusals from the first one, for fanRetryLimit.
const errRefusedRestart = "refused, session restarted"

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

// drop forgets the record of one device (its session was deleted).
func (d *devRecords) drop(k ackKey) {
	delete(d.recs, k)
	delete(d.dirty, k)
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
	if len(peers) == 0 || (len(peers) == 1 && peers[0] == c.PeerID) {
		// No device but the primary one. (A contact may have a session
		// with another device and none with the primary: added from the
		// invite its phone showed, written to from its laptop.)
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

// initiationRecord finds the session record, among those with c's
// devices, that holds the session in starts: a repeat of an initiation
// that came through a mailbox, where no transport names the device. For a
// new session it returns found false (the card inside names the device,
// receive.go).
func (m *Messenger) initiationRecord(tx *store.Tx, rx *batch, c *store.Contact, in *handshake.Initiation) (peer string, rec *wirepb.SessionRecord, found bool, err error) {
	peers, err := tx.DeviceSessionPeers(c.ID)
	if err != nil {
		return "", nil, false, err
	}
	peers = append([]string{c.PeerID}, peers...)
	for k := range rx.dev.recs {
		if k.cid == c.ID {
			peers = append(peers, k.peer) // started earlier in this batch
		}
	}
	seen := map[string]bool{}
	for _, p := range peers {
		if seen[p] {
			continue
		}
		seen[p] = true
		r, err := rx.recordFor(tx, c, p)
		if err != nil {
			return "", nil, false, err
		}
		if hasBaseKey(r, in) {
			return p, r, true, nil
		}
	}
	return "", nil, false, nil
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
	if card, err := identity.ParseSignedCard(c.Card); err == nil {
		var b []byte
		for _, d := range card.Devices {
			if d.PeerID == "" || d.PeerID == c.PeerID || d.PeerID == m.selfPeer() {
				continue
			}
			if b == nil {
				// Cloned only for a contact with other devices (a group
				// invitation is ~130 KB, for each contact it goes to).
				bare := proto.Clone(p).(*wirepb.Payload)
				bare.SenderCard, bare.InviteProof = nil, nil // attached again when a device's session starts
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
