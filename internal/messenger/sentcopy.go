package messenger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Sent copies (issue 17): what one device of our account sends to a
// contact is copied to each other device of the account (fanout.go), on a
// session per pair of our devices (contact id 0). A copy goes direct when
// the device is reachable, the stream's OK being its receipt; otherwise it
// is deposited, sealed to our own identity, with the mailbox hosts of that
// device's own card (depositDevice), like a contact's device copy. The
// device that fetches it from its mailbox learns which of our devices
// sealed it by decrypting (the box names only our account), and answers
// with an ack on the same session, queued like any device copy: it clears
// the sender's copy. The file of a sent copy is fetched like a received
// one, from the device that sent it, else from the contact's device, which
// fetched it too.

// fromSelfHint reports whether a sealed box's sender hint names our own
// account.
func (m *Messenger) fromSelfHint(hint []byte) bool {
	return len(hint) > 0 && bytes.Equal(hint, sealedHint(m.id.Public().SigningKey()))
}

// receiveOwn takes an envelope from another device of our account: a
// sent copy, shown as sent in the chat with the contact it names, or the
// ack of one. peer is the device the stream came from, "" for an envelope
// from our mailbox (the device is found by decryption). A device our list
// does not hold as active (revoked) is refused.
func (m *Messenger) receiveOwn(tx *store.Tx, rx *batch, peer string, in *handshake.Initiation, env *wirepb.Envelope, resp *wirepb.Response) error {
	l, err := devices.Load(tx)
	if err != nil {
		return err
	}
	if e := l.Find(peer); in != nil && peer != "" && (e == nil || e.Device.PeerID != peer) {
		// A device holding the account key that our list does not name
		// at all: linked on another device of ours, whose list has not
		// reached us yet (devsync.go). Later, not never.
		m.log.Info("unknownOwnDevice", "device", shortPeer(peer))
		return fmt.Errorf("%w (a device of ours not in our list yet)", errRequestLater)
	}
	if peer != "" && !l.IsActive(peer) {
		m.log.Info("revokedDeviceRefused", "device", shortPeer(peer))
		m.revokedWrote(peer) // it is told again (revoked.go)
		return permanent(ErrRevokedDevice)
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
	fromMailbox := peer == ""
	var rec *wirepb.SessionRecord
	var plain []byte
	consumed := false
	if !fromMailbox {
		if rec, err = rx.dev.get(tx, ackKey{0, peer}); err != nil {
			return err
		}
		if plain, consumed, err = m.decrypt(rec, in, prekeys, env); err != nil {
			return permanent(err)
		}
	} else if peer, rec, plain, consumed, err = m.openOwnMailbox(tx, rx, l, in, prekeys, env); err != nil {
		return err
	}
	p, err := openPayload(plain)
	if err != nil {
		return err
	}
	var card *identity.Card
	if len(p.SenderCard) > 0 {
		if card, err = identity.ParseSignedCard(p.SenderCard); err != nil || card.AccountID() != m.acct || len(card.Devices) == 0 {
			card = nil
		}
	}
	if peer == "" {
		// A new session from our mailbox: the device that started it
		// names itself first in the card it must carry. One our list
		// does not name at all was linked on another device of ours,
		// whose list has not reached us yet: the envelope waits in the
		// mailbox, as a stream from it waits (above).
		if card != nil {
			if dev, e := card.Devices[0].PeerID, l.Find(card.Devices[0].PeerID); (e == nil || e.Device.PeerID != dev) && dev != m.selfPeer() {
				m.log.Info("unknownOwnDevice", "device", shortPeer(dev))
				return fmt.Errorf("%w (a device of ours not in our list yet)", errRequestLater)
			}
		}
		if card == nil || !l.IsActive(card.Devices[0].PeerID) || card.Devices[0].PeerID == m.selfPeer() {
			m.log.Info("ownDeviceUnknown")
			return permanent(ErrRevokedDevice)
		}
		peer = card.Devices[0].PeerID
		fresh := rec
		if rec, err = rx.dev.get(tx, ackKey{0, peer}); err != nil {
			return err
		}
		rec.Sessions = append(fresh.Sessions, rec.Sessions...)
	}
	switch body := p.Body.(type) {
	case *wirepb.Payload_Sent:
		if !bytes.Equal(body.Sent.Text.MessageId, env.MessageId) {
			return permanent(fmt.Errorf("%w: not a sent copy", ErrBadMessage))
		}
	case *wirepb.Payload_Ack, *wirepb.Payload_Card, *wirepb.Payload_Sync, *wirepb.Payload_History, *wirepb.Payload_Group, // devsync.go, history.go, groupdevices.go
		*wirepb.Payload_Revoked: // revoked.go
	default:
		return permanent(fmt.Errorf("%w: not a sent copy", ErrBadMessage))
	}
	// All checks passed: write.
	rx.dev.set(ackKey{0, peer}, rec)
	if consumed {
		if err := tx.PutBlob(blobPrekeys, prekeys.Marshal()); err != nil {
			return err
		}
	}
	if card != nil {
		if err := m.noteDeviceCard(tx, 0, m.acct, card, p.SenderCard); err != nil {
			return err
		}
		if m.tr != nil && card.Devices[0].PeerID == peer {
			m.tr.AddAddrs(peer, card.Devices[0].Addrs) // its addresses now
		}
	}
	if e := l.Find(peer); e != nil {
		e.LastSeen = m.now()
		if err := devices.Save(tx, l); err != nil {
			return err
		}
	}
	// Our own device needs no ack on a stream: the stream is authenticated.
	resp.Status = wirepb.Response_STATUS_OK
	if ack := p.GetAck(); ack != nil {
		return m.ownAcked(tx, peer, ack)
	}
	if u := p.GetCard(); u != nil {
		return m.ownCardUpdate(tx, l, peer, u) // cardpush.go
	}
	if g := p.GetGroup(); g != nil {
		if fromMailbox {
			if err := m.ackOwnMailbox(tx, 0, peer, env); err != nil {
				return err
			}
		}
		return m.receiveOwnGroup(tx, rx, peer, g) // its sender key, its ops (groupdevices.go)
	}
	if n := p.GetRevoked(); n != nil {
		return m.receiveRevocation(tx, rx, peer, n) // revoked.go
	}
	if h := p.GetHistory(); h != nil {
		return m.receiveHistory(tx, peer, h) // history.go
	}
	if sync := p.GetSync(); sync != nil {
		if fromMailbox {
			if err := m.ackOwnMailbox(tx, 0, peer, env); err != nil {
				return err
			}
		}
		return m.applySync(tx, rx, peer, sync) // devsync.go
	}
	sent := p.GetSent()
	c, err := tx.ContactByAccount(sent.ToAccount)
	if errors.Is(err, store.ErrNotFound) {
		// A contact this device does not hold (deleted here; a contact
		// added on the other device comes before, devsync.go): nothing
		// to show it in.
		m.log.Info("sentCopyUnknownContact", "contact", identity.Short(sent.ToAccount))
		return nil
	} else if err != nil {
		return err
	}
	if fromMailbox {
		if err := m.ackOwnMailbox(tx, c.ID, peer, env); err != nil {
			return err
		}
	}
	t := sent.Text
	msgID := hex.EncodeToString(t.MessageId)
	at := time.UnixMilli(t.SentAtUnixMs)
	msg := &store.Message{ID: msgID, ContactID: c.ID, Outgoing: true, Body: t.Body, SentAt: at, At: at, State: StateSent}
	inserted, err := tx.InsertMessage(msg)
	if err != nil {
		return err
	}
	if !inserted {
		return nil
	}
	// Its file: from the device that sent it, else the contact's.
	if err := m.receivedAttachment(tx, c, msgID, peer, t.Attachment); err != nil {
		return err
	}
	rx.events = append(rx.events, Event{Type: EventMessage, ContactID: c.ID, MessageID: msgID, State: StateSent})
	return nil
}

// ackOwnMailbox queues the ack of an envelope our device peer left in
// our mailbox: the sender waits for it to drop its copy (cid 0: a change
// between our devices, devsync.go).
func (m *Messenger) ackOwnMailbox(tx *store.Tx, cid int64, peer string, env *wirepb.Envelope) error {
	return tx.EnqueueDevice(store.DeviceItem{ContactID: cid, PeerID: peer, Own: true, MessageID: ackItemPrefix + hex.EncodeToString(env.MessageId),
		Payload:     wire.Marshal(&wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Ack{Ack: &wirepb.Ack{MessageIds: [][]byte{env.MessageId}}}}),
		NextAttempt: m.now()})
}

// openOwnMailbox decrypts an envelope that another device of ours left
// in our mailbox: on the session with one of our active devices (one
// started earlier in this batch too: the same initiation comes on each
// envelope until the device hears back), or (an initiation) on a new
// session, whose device the caller learns from the card in the payload
// (peer "").
func (m *Messenger) openOwnMailbox(tx *store.Tx, rx *batch, l *devices.List, in *handshake.Initiation, prekeys *handshake.Prekeys, env *wirepb.Envelope) (peer string, rec *wirepb.SessionRecord, plain []byte, consumed bool, err error) {
	peers, err := ownSessionPeers(tx, rx)
	if err != nil {
		return "", nil, nil, false, err
	}
	for _, p := range peers {
		if !l.IsActive(p) || p == m.selfPeer() {
			continue
		}
		r, err := rx.dev.get(tx, ackKey{0, p})
		if err != nil {
			return "", nil, nil, false, err
		}
		if in != nil && !hasBaseKey(r, in) {
			continue // not this device's initiation (a repeat of one is)
		}
		m.sealedTrials.Add(1)
		if pt, used, err := m.decrypt(r, in, prekeys, env); err == nil {
			return p, r, pt, used, nil
		}
	}
	if in == nil {
		return "", nil, nil, false, permanent(ErrNoSession)
	}
	r := &wirepb.SessionRecord{Version: wire.Version}
	pt, used, err := m.decrypt(r, in, prekeys, env)
	if err != nil {
		return "", nil, nil, false, permanent(err)
	}
	return "", r, pt, used, nil
}

// ownSessionPeers lists our devices we hold a session record with: those
// stored, and those whose session was started earlier in batch rx (nil:
// none), whose repeated initiation must find it.
func ownSessionPeers(tx *store.Tx, rx *batch) ([]string, error) {
	peers, err := tx.DeviceSessionPeers(0)
	if err != nil || rx == nil {
		return peers, err
	}
	for k := range rx.dev.recs {
		if k.cid == 0 && !slices.Contains(peers, k.peer) {
			peers = append(peers, k.peer)
		}
	}
	return peers, nil
}

// ownRepeatRecord returns the session record, among our devices', that
// holds the session in starts: a repeat of an initiation that came through
// our mailbox, where no transport names the device (found false: a new
// session, or no device of ours).
func ownRepeatRecord(tx *store.Tx, in *handshake.Initiation) (rec *wirepb.SessionRecord, found bool, err error) {
	peers, err := ownSessionPeers(tx, nil)
	if err != nil {
		return nil, false, err
	}
	for _, p := range peers {
		if rec, err = loadDevRecord(tx, 0, p); err != nil {
			return nil, false, err
		}
		if hasBaseKey(rec, in) {
			return rec, true, nil
		}
	}
	return nil, false, nil
}

func hasBaseKey(rec *wirepb.SessionRecord, in *handshake.Initiation) bool {
	for _, e := range rec.Sessions {
		if bytes.Equal(e.PeerBaseKey, in.Ephemeral[:]) {
			return true
		}
	}
	return false
}

// ownAcked removes what was queued for our device peer (sent copies,
// changes, group controls) that its ack (sent after it fetched them from
// its mailbox) names.
func (m *Messenger) ownAcked(tx *store.Tx, peer string, ack *wirepb.Ack) error {
	items, err := tx.DeviceOutbox(peer)
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, id := range ack.MessageIds {
		ids[hex.EncodeToString(id)] = true
	}
	for _, it := range items {
		// A group control is queued as groupItemPrefix and its envelope's
		// id (groupdevices.go).
		if it.Own && ids[strings.TrimPrefix(it.MessageID, groupItemPrefix)] {
			if err := tx.DeleteDeviceItem(peer, it.ContactID, it.MessageID); err != nil {
				return err
			}
		}
	}
	return nil
}

// blobOwnCardSent names the blob holding the serial of the last card of
// ours another device of ours (peer) was sent.
func blobOwnCardSent(peer string) string { return "cardsent.own." + peer }

// attachOwnCard puts our card in p if our device peer has not been sent
// this version yet: it then holds our mailbox hosts and prekeys, to answer
// through our mailbox while we are offline.
func (m *Messenger) attachOwnCard(tx *store.Tx, peer string, p *wirepb.Payload, card []byte) error {
	if len(card) == 0 {
		return nil
	}
	c, err := identity.ParseSignedCard(card)
	if err != nil {
		return nil
	}
	serial := binary.BigEndian.AppendUint64(nil, c.Serial)
	if b, err := tx.Blob(blobOwnCardSent(peer)); err == nil && bytes.Equal(b, serial) && len(p.SenderCard) == 0 {
		return nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if len(p.SenderCard) == 0 {
		p.SenderCard = card
	}
	return tx.PutBlob(blobOwnCardSent(peer), serial)
}
