package messenger

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// A revoked device that keeps running (issue 17: a lost or stolen phone).
// The device that revokes it sends it one last item (Payload.revoked): the
// account's device list marking it revoked, signed by the account key.
// It goes through the device outbox like any copy for our own devices —
// direct, else deposited with the mailbox hosts of the device's own card —
// although the device is no longer active (target lets this one item
// through). The revoked device checks the signature under the account
// identity it holds (who delivered the notice does not matter), that the
// list marks it revoked and is not older than its own list; then it
// records the revocation (revokedBlob), stops sending and publishing, and
// says so (Revoked, ErrDeviceRevoked); its stored history stays.
//
// A device refused as revoked does not give up on the refusal alone (any
// peer can say it): a contact's or our device's refusal makes it look up
// our account's card record in the DHT (a card the account signed, with a
// newer device list that does not list this device counts as proof), and
// our device that refuses a revoked device of ours sends it the notice
// again.

// ErrDeviceRevoked is returned for a send from a device that was removed
// from its account.
var ErrDeviceRevoked = errors.New("this device was removed from your account (revoked by another device): it can read its history but can no longer send")

const (
	// deviceListDomain separates the account key's signature over a
	// device list (RevocationNotice) from its other signatures.
	deviceListDomain = "samizdat/device-list/v1"
	// revokedBlob holds this device's own revocation, once verified.
	revokedBlob = "devices.revoked"
	// notifiedBlob lists the revoked devices already sent the notice.
	notifiedBlob = "devices.revoked.notified"
	// revokedItemPrefix marks the notice in the device outbox.
	revokedItemPrefix = ackItemPrefix + "r"
	// renotifyEvery bounds how often a revoked device that writes to us
	// is sent the notice again.
	renotifyEvery = 10 * time.Minute
	// revokedLookupEvery bounds the DHT lookups a refusal starts.
	revokedLookupEvery = time.Minute
)

// Revocation says that and when this device was revoked, and by which
// device of the account (the one that sent the notice, or made the card
// that proved it).
type Revocation struct {
	At      time.Time `json:"at"`
	By      string    `json:"by"`
	ByName  string    `json:"byName,omitempty"`
	Version uint64    `json:"version"` // the device list's
}

// revokedState is the messenger's in-memory view of revokedBlob and of
// the refusals waiting for a check.
type revokedState struct {
	mu         sync.Mutex
	rev        *Revocation
	renotify   map[string]time.Time // our revoked device → when last told again
	pending    map[string]bool      // to tell again at the next flush
	lastLookup time.Time
	suspect    bool // refused as revoked: look our card up
	loaded     atomic.Bool
	// ignore makes this device act as modified code would that ignores
	// its revocation (tests: a stolen phone that keeps sending, which
	// contacts and our devices must refuse by themselves).
	ignore atomic.Bool
}

// Revoked returns this device's revocation, or nil while it is active.
func (m *Messenger) Revoked() *Revocation {
	s := &m.revokedSt
	if !s.loaded.Load() {
		m.loadRevoked(context.Background()) // before Start (an offline node)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rev == nil {
		return nil
	}
	r := *s.rev
	return &r
}

// loadRevoked reads this device's revocation, if any, at Start.
func (m *Messenger) loadRevoked(ctx context.Context) {
	var r *Revocation
	_ = m.st.View(ctx, func(tx *store.Tx) error {
		if b, err := tx.Blob(revokedBlob); err == nil {
			var v Revocation
			if json.Unmarshal(b, &v) == nil {
				r = &v
			}
		}
		return nil
	})
	s := &m.revokedSt
	s.mu.Lock()
	if s.rev == nil {
		s.rev = r
	}
	s.mu.Unlock()
	s.loaded.Store(true)
}

// revokedErr returns ErrDeviceRevoked once this device knows it was
// revoked.
func (m *Messenger) revokedErr() error {
	if m.Revoked() != nil {
		return ErrDeviceRevoked
	}
	return nil
}

// signedDeviceList returns our device list and the account's signature.
func (m *Messenger) signedDeviceList(tx *store.Tx) (*wirepb.RevocationNotice, error) {
	l, err := devices.Load(tx)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return &wirepb.RevocationNotice{List: b, Signature: m.id.Sign(deviceListDomain, b)}, nil
}

// queueRevocationNotices queues the notice for each device our list
// revokes that was not sent one yet (DevicesChanged). Whatever else was
// queued for such a device is dropped: nothing more goes there.
func (m *Messenger) queueRevocationNotices(tx *store.Tx) error {
	l, err := devices.Load(tx)
	if err != nil {
		return err
	}
	held, _ := tx.Blob(notifiedBlob)
	done := strings.Fields(string(held))
	var fresh []string
	for _, e := range l.Entries {
		if e.Revoked() && e.Device.PeerID != m.selfPeer() && !contains(done, e.Device.PeerID) {
			if err := m.queueRevocationNotice(tx, e.Device.PeerID); err != nil {
				return err
			}
			fresh = append(fresh, e.Device.PeerID)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	return tx.PutBlob(notifiedBlob, []byte(strings.Join(append(done, fresh...), "\n")))
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// queueRevocationNotice replaces whatever is queued for our revoked
// device peer with the notice.
func (m *Messenger) queueRevocationNotice(tx *store.Tx, peer string) error {
	n, err := m.signedDeviceList(tx)
	if err != nil {
		return err
	}
	if err := tx.DeleteDeviceItems(peer); err != nil {
		return err
	}
	id := make([]byte, wire.MessageIDSize)
	if _, err := io.ReadFull(m.rand, id); err != nil {
		return err
	}
	p := wire.Marshal(&wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Revoked{Revoked: n}})
	m.log.Info("revocationNoticeQueued", "device", shortPeer(peer))
	return tx.EnqueueDevice(store.DeviceItem{ContactID: 0, PeerID: peer, Own: true,
		MessageID: revokedItemPrefix + hex.EncodeToString(id), Payload: p, NextAttempt: m.now()})
}

// revokedTarget is target's answer for our own device peer that our list
// revokes: only the notice goes there.
func revokedTarget(l *devices.List, it store.DeviceItem) (identity.Device, bool) {
	e := l.Find(it.PeerID)
	if e == nil || e.Device.PeerID != it.PeerID || !e.Revoked() || !strings.HasPrefix(it.MessageID, revokedItemPrefix) {
		return identity.Device{}, false
	}
	return e.Device, true
}

// revokedWrote notes that our revoked device peer wrote to us (refused):
// it is sent the notice again at the next flush, at most every
// renotifyEvery.
func (m *Messenger) revokedWrote(peer string) {
	if peer == "" {
		return
	}
	s := &m.revokedSt
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.renotify[peer]; ok && m.now().Sub(t) < renotifyEvery {
		return
	}
	if s.renotify == nil {
		s.renotify, s.pending = map[string]time.Time{}, map[string]bool{}
	}
	s.renotify[peer] = m.now()
	s.pending[peer] = true
	m.wake()
}

// refusedAsRevoked notes that a device or contact refused us as revoked:
// the next flush looks our card up (the refusal alone proves nothing).
func (m *Messenger) refusedAsRevoked(by string) {
	s := &m.revokedSt
	s.mu.Lock()
	s.suspect = true
	s.mu.Unlock()
	m.log.Info("refusedAsRevoked", "by", shortPeer(by))
	m.wake()
}

// revokedFlush runs at each flush: the notices to send again, and the
// check of our own card after a refusal. It reports whether this device
// is revoked (then nothing is sent).
func (m *Messenger) revokedFlush(ctx context.Context) bool {
	if m.Revoked() != nil {
		return true
	}
	s := &m.revokedSt
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	lookup := s.suspect && m.now().Sub(s.lastLookup) >= revokedLookupEvery
	if lookup {
		s.suspect, s.lastLookup = false, m.now()
	}
	s.mu.Unlock()
	if len(pending) > 0 {
		s.mu.Lock()
		s.pending = map[string]bool{}
		s.mu.Unlock()
		_ = m.st.Update(ctx, func(tx *store.Tx) error {
			l, err := devices.Load(tx)
			if err != nil {
				return err
			}
			for p := range pending {
				if e := l.Find(p); e != nil && e.Device.PeerID == p && e.Revoked() {
					if err := m.queueRevocationNotice(tx, p); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	if lookup {
		if d := m.directory(); d != nil {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.checkOwnCardRecord(ctx, d)
			}()
		}
	}
	return false
}

// checkOwnCardRecord looks our account's card up in the DHT: a card the
// account signed whose device list is newer than ours and does not list
// this device proves that it was revoked.
func (m *Messenger) checkOwnCardRecord(ctx context.Context, d cardDirectory) {
	lctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	defer cancel()
	rec, err := d.GetValue(lctx, cardRecordKey(m.acct))
	if err != nil {
		m.log.Debug("ownCardLookup", "err", err)
		return
	}
	card, _, err := identity.OpenCardRecord(m.acct, rec)
	if err != nil || !card.Identity.Equal(m.id.Public()) {
		m.log.Info("ownCardRecordRejected", "err", err)
		return
	}
	self := m.selfPeer()
	var r *Revocation
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		r = nil
		l, err := devices.Load(tx)
		if err != nil {
			return err
		}
		if card.DeviceVersion <= l.Version || card.HasDevice(self) || len(card.Devices) == 0 {
			return nil // not newer, or it lists us: nothing proven
		}
		by := card.Devices[0]
		r = &Revocation{At: m.now(), By: by.PeerID, ByName: by.Name, Version: card.DeviceVersion}
		return m.recordRevoked(tx, r, "card")
	})
	if err != nil && ctx.Err() == nil {
		m.log.Debug("ownCardCheckFailed", "err", err)
	} else if err == nil && r != nil {
		m.setRevoked(r, "card")
	}
}

// receiveRevocation takes a notice from our device peer (receiveOwn): if
// the account signed it, it is not older than our list and it marks this
// device revoked, this device stops. Anything else changes nothing.
func (m *Messenger) receiveRevocation(tx *store.Tx, rx *batch, peer string, n *wirepb.RevocationNotice) error {
	reject := func(why string) error {
		m.log.Info("revocationNoticeRejected", "device", shortPeer(peer), "reason", why)
		return nil
	}
	if !m.id.Public().Verify(deviceListDomain, n.List, n.Signature) {
		return reject("not signed by the account")
	}
	var signed devices.List
	if err := json.Unmarshal(n.List, &signed); err != nil {
		return reject("unreadable list")
	}
	ours, err := devices.Load(tx)
	if err != nil {
		return err
	}
	if signed.Version < ours.Version {
		return reject("older than our list")
	}
	self := m.selfPeer()
	e := signed.Find(self)
	if e == nil || e.Device.PeerID != self || !e.Revoked() {
		return reject("does not revoke this device")
	}
	r := &Revocation{At: e.RevokedAt, By: peer, Version: signed.Version}
	if b := signed.Find(peer); b != nil && b.Device.PeerID == peer {
		r.ByName = b.Device.Name
	}
	if err := m.recordRevoked(tx, r, "notice"); err != nil {
		return err
	}
	rx.after = append(rx.after, func() { m.setRevoked(r, "notice") })
	return nil
}

// recordRevoked stores this device's revocation (and marks it so in our
// list); once the transaction committed, setRevoked makes it stop.
func (m *Messenger) recordRevoked(tx *store.Tx, r *Revocation, how string) error {
	m.revokedSt.mu.Lock()
	known := m.revokedSt.rev != nil // loaded at Start, before anything is received
	m.revokedSt.mu.Unlock()
	if known || m.revokedSt.ignore.Load() {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := tx.PutBlob(revokedBlob, b); err != nil {
		return err
	}
	l, err := devices.Load(tx)
	if err != nil {
		return err
	}
	if e := l.Find(m.selfPeer()); e != nil && e.Device.PeerID == m.selfPeer() && !e.Revoked() {
		e.RevokedAt = r.At
		if err := devices.Save(tx, l); err != nil {
			return err
		}
	}
	return nil
}

// setRevoked makes this device stop, its revocation stored: from now on
// it sends and publishes nothing.
func (m *Messenger) setRevoked(r *Revocation, how string) {
	s := &m.revokedSt
	if s.ignore.Load() {
		m.log.Info("revocationIgnored", "proof", how)
		return
	}
	s.mu.Lock()
	first := s.rev == nil
	if first {
		s.rev = r
	}
	s.mu.Unlock()
	if first {
		m.log.Warn("deviceRevoked", "by", shortPeer(r.By), "version", r.Version, "proof", how)
		m.emit(Event{Type: EventRevoked})
	}
}

// String describes a revocation for logs and the CLI.
func (r *Revocation) String() string {
	by := r.ByName
	if by == "" {
		by = shortPeer(r.By)
	}
	return fmt.Sprintf("removed from the account at %s by %s", r.At.Format(time.RFC3339), by)
}
