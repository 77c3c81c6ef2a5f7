package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
	"google.golang.org/protobuf/proto"
)

// The delivery of device copies (fanout.go): one stream per device, a
// session started from the device's claimed one-time prekeys or its own
// card, and the mailbox hosts of its own card when it cannot be reached.

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
		var dev identity.Device
		if l.IsActive(it.PeerID) {
			dev = l.Find(it.PeerID).Device
		} else if d, ok := revokedTarget(l, it); ok {
			dev = d // revoked: its notice only (revoked.go)
		} else {
			return deviceTarget{}, false, nil
		}
		card, _ := m.currentCard()
		return deviceTarget{contact: &store.Contact{AccountID: m.acct, Card: card}, own: true, device: dev, ident: m.id.Public()}, true, nil
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
	if listed && items[0].Attempts > 0 {
		// Copies of messages sent longer than GiveUpAfter ago are given up
		// (a device lost but not revoked must not grow the queue for
		// ever); the message's state is the primary device's and the
		// other devices' business.
		if items, err = m.expireDeviceItems(ctx, peer, items, now); err != nil || len(items) == 0 {
			return err
		}
	}
	if !listed {
		if !items[0].Own {
			// It became the contact's primary device (the primary was
			// revoked): its copies move to the outbox (cardpush.go).
			if err := m.adoptPrimaryQueue(ctx, peer, items[0].ContactID); err != nil {
				return err
			}
		}
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
	if devCard != nil {
		m.tr.AddAddrs(peer, devCard.Devices[0].Addrs) // where the device said it is, later than the list
	}
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
		if err != nil && devCard == nil {
			devCard = m.lookupDeviceCard(ctx, tg, peer) // devicerecord.go
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
		if devCard == nil {
			devCard = m.lookupDeviceCard(ctx, tg, peer) // devicerecord.go
		}
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
			if len(rec.Sessions[0].Initiation) > 0 && (p.GetAck() == nil || tg.own) && len(p.SenderCard) == 0 {
				p.SenderCard = card // the device learns our own card (mailbox hosts, prekeys)
			}
			if tg.own {
				if err := m.attachOwnCard(tx, peer, p, card); err != nil { // sentcopy.go
					return err
				}
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
	if card == nil || len(card.Mailboxes) == 0 {
		return
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
	if accepted > 0 {
		m.log.Debug("deviceCopiesDeposited", "device", shortPeer(peer), "own", tg.own, "count", accepted)
	}
	// An ack (or card update) needs no answer: deposited, it is done.
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		for _, it := range todo[:accepted] {
			if strings.HasPrefix(it.MessageID, ackItemPrefix) {
				if err := tx.DeleteDeviceItem(peer, it.ContactID, it.MessageID); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("depositedAcksNotCleared", "err", err)
	}
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
				// Refusals are counted apart from the attempts at a device
				// that was away (each of those is an attempt too): a copy
				// tried many times while the device was offline is not
				// dropped at its first refusal (two devices starting
				// sessions with each other at once, say).
				// A device that refuses us as revoked does so for good, and
				// a replayed copy is one it has: neither is tried again.
				if r.Error == RefusedRevoked {
					m.refusedAsRevoked(peer) // revoked.go: proven or not
				}
				if r.Error == "replayed message" || r.Error == RefusedRevoked ||
					(strings.HasPrefix(it.LastError, errRefusedRestart) && it.Attempts+1 >= fanRetryLimit) {
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
				n, why := it.Attempts+1, "not acked"
				switch {
				case restart:
					if why = errRefusedRestart; !strings.HasPrefix(it.LastError, errRefusedRestart) {
						n = 1 // the first refusal: counted from here
					}
				case strings.HasPrefix(it.LastError, errRefusedRestart):
					// Put off ("retry": a restarted session rate-limited,
					// say) between refusals: still being refused, and still
					// counted, so that refusals alternating with "retry"
					// end at fanRetryLimit too.
					why = errRefusedRestart + ": not acked"
				}
				return tx.RescheduleDevice(peer, n, now.Add(m.backoff(n)), why)
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
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		why := cause.Error()
		// Failing while its copies are being refused (the restarted
		// session cannot start): still refused, for fanRetryLimit.
		if items, err := tx.DeviceOutbox(peer); err != nil {
			return err
		} else if len(items) > 0 && strings.HasPrefix(items[0].LastError, errRefusedRestart) {
			why = errRefusedRestart + ": " + why
		}
		return tx.RescheduleDevice(peer, n, next, why)
	})
	if err != nil && ctx.Err() == nil {
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

// expireDeviceItems drops a device's copies of messages sent more than
// GiveUpAfter before now and returns the others. What is queued for our
// own devices with no message of its own (a change, devsync.go; a card
// update, a group control, an ack) goes GiveUpAfter after it was queued:
// a device lost but not revoked must not grow the queue for ever.
func (m *Messenger) expireDeviceItems(ctx context.Context, peer string, items []store.DeviceItem, now time.Time) ([]store.DeviceItem, error) {
	var keep []store.DeviceItem
	own := 0
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		keep, own = keep[:0], 0
		for _, it := range items {
			msg, err := tx.Message(it.ContactID, true, it.MessageID)
			expired := err == nil && now.Sub(msg.SentAt) > m.cfg.GiveUpAfter
			if errors.Is(err, store.ErrNotFound) && it.Own && !it.Queued.IsZero() && now.Sub(it.Queued) > m.cfg.GiveUpAfter {
				expired = true
				own++
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if expired {
				if err := tx.DeleteDeviceItem(peer, it.ContactID, it.MessageID); err != nil {
					return err
				}
				continue
			}
			keep = append(keep, it)
		}
		return nil
	})
	if err != nil {
		return keep, err
	}
	if n := len(items) - len(keep) - own; n > 0 {
		m.log.Info("deviceCopiesGivenUp", "device", shortPeer(peer), "count", n)
	}
	if own > 0 {
		m.log.Info("ownDeviceItemsGivenUp", "device", shortPeer(peer), "count", own)
	}
	return keep, nil
}
