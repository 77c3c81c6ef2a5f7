package messenger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Sync between the devices of one account (issue 17), as Signal's and
// WhatsApp's linked devices do: what one device changes goes to the
// account's other active devices as a DeviceSync (Payload.sync), one
// change per payload, queued in the durable device outbox under contact 0
// (our own account) exactly like sent copies (fanout.go), so a device that
// is offline gets it when next reached. A DeviceSync is accepted only from
// a device our device list holds active (receiveOwn); from anyone else it
// is refused and logged (by short ids only).
//
// Every change is idempotent (applying it twice is applying it once), and
// where two devices may change the same thing it is ordered:
//
//   - a contact (added, renamed, verified, accepted from a request,
//     deleted) and the settings: last writer wins by the change's time,
//     the greater origin (peer id) on a tie; the newest change applied
//     per item is kept in the store (sync_clock), our own changes too;
//   - a group (created, joined, left): its ops are a set, merged;
//   - a channel (created, followed): followed on the other devices; one we
//     own is read there but posted to from the device that created it
//     only (its owner key stays there: two devices signing one hash chain
//     would fork it);
//   - read state: messages (by id, the same on every device) marked read,
//     never unread, and no read receipt is sent again;
//   - the device list: merged (devices.List.Merge), and told back when the
//     sender's list lacks something.

// devSync is the Messenger's sync state.
type devSync struct {
	queued     atomic.Bool // something was queued: wake the delivery after commit
	mu         sync.Mutex
	onSettings func([]byte)
}

// newSyncID makes the device-outbox id of a sync payload (it has no
// message row): random, hex, as a message id.
func newSyncID(m *Messenger) (string, error) {
	id := make([]byte, wire.MessageIDSize)
	if _, err := io.ReadFull(m.rand, id); err != nil {
		return "", err
	}
	return hex.EncodeToString(id), nil
}

// queueSync sends a change to each other active device of our account.
// It is called inside the transaction that made the change; key, if not
// empty, names the item whose newest change is recorded (last writer
// wins).
func (m *Messenger) queueSync(tx *store.Tx, key string, s *wirepb.DeviceSync) error {
	s.Version = wire.Version
	if s.AtUnixMs == 0 { // else a change made before, sent again (syncSnapshot)
		s.AtUnixMs, s.Origin = m.now().UnixMilli(), m.selfPeer()
	}
	if s.Origin == "" {
		return nil // not on a network (tests without transport): no devices either
	}
	if key != "" {
		if err := tx.PutSyncClock(key, s.AtUnixMs, s.Origin); err != nil {
			return err
		}
	}
	own, err := m.ownOtherDevices(tx)
	if err != nil || len(own) == 0 {
		return err
	}
	b := wire.Marshal(&wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Sync{Sync: s}})
	if len(b) > maxSyncPayload {
		m.log.Warn("deviceSyncTooLarge", "bytes", len(b))
		return nil
	}
	for _, d := range own {
		id, err := newSyncID(m)
		if err != nil {
			return err
		}
		if err := tx.EnqueueDevice(store.DeviceItem{PeerID: d.PeerID, Own: true, MessageID: id, Payload: b, NextAttempt: m.now()}); err != nil {
			return err
		}
		// Tried at once, not after the backoff of what waits for it
		// (the queue goes in order).
		if err := tx.DeviceDueNow(d.PeerID, m.now()); err != nil {
			return err
		}
	}
	m.dsync.queued.Store(true)
	return nil
}

// syncWake starts the delivery of what queueSync queued, once the
// transaction committed.
func (m *Messenger) syncWake() {
	if m.dsync.queued.Swap(false) {
		m.wake()
	}
}

func contactKey(acct string) string { return "contact/" + acct }

const settingsKey = "settings"

// syncContact queues contact c's state (or, deleted, its deletion).
func (m *Messenger) syncContact(tx *store.Tx, c *store.Contact, deleted bool) error {
	if !c.Request.IsZero() && !deleted {
		return nil // a pending request is every device's own until accepted
	}
	sc := &wirepb.SyncContactState{Account: c.AccountID, Deleted: deleted}
	if !deleted {
		sc.Card, sc.Name, sc.Verified = c.Card, c.Name, c.Verified
	}
	return m.queueSync(tx, contactKey(c.AccountID), &wirepb.DeviceSync{Item: &wirepb.DeviceSync_Contact{Contact: sc}})
}

// syncRead queues the ids of the messages of c just marked read.
func (m *Messenger) syncRead(tx *store.Tx, c *store.Contact, ids []string) error {
	for _, raw := range readBatches(ids) {
		if err := m.queueSync(tx, "", &wirepb.DeviceSync{Item: &wirepb.DeviceSync_Read{Read: &wirepb.SyncReadState{Account: c.AccountID, MessageIds: raw}}}); err != nil {
			return err
		}
	}
	return nil
}

// syncChannel queues a channel we created or followed.
func (m *Messenger) syncChannel(tx *store.Tx, c *store.Channel) error {
	inv := &wirepb.ChannelInvite{Version: wire.Version, OwnerPub: c.OwnerPub, Name: c.Name, BodyKey: c.BodyKey}
	if m.tr != nil {
		inv.Seeds = m.tr.Addrs()
	}
	for _, s := range c.Seeds {
		if len(inv.Seeds) < 16 {
			inv.Seeds = append(inv.Seeds, s)
		}
	}
	return m.queueSync(tx, "", &wirepb.DeviceSync{Item: &wirepb.DeviceSync_Channel{Channel: wire.Marshal(inv)}})
}

// syncGroup queues group gid: its secret, name and signed ops.
func (m *Messenger) syncGroup(tx *store.Tx, gid []byte) error {
	g, err := tx.Group(gid)
	if err != nil || len(g.Secret) == 0 {
		return err
	}
	ops, err := tx.GroupOps(gid)
	if err != nil {
		return err
	}
	// A large group's ops go in several changes (they merge as a set):
	// each must fit an envelope.
	for _, part := range splitOps(ops, maxSyncGroupOps) {
		sg := &wirepb.SyncGroupState{Id: g.ID, Secret: g.Secret, Name: g.Name, CreatedUnixMs: g.Created.UnixMilli(), Ops: part}
		if err := m.queueSync(tx, "", &wirepb.DeviceSync{Item: &wirepb.DeviceSync_Group{Group: sg}}); err != nil {
			return err
		}
	}
	return nil
}

// maxSyncGroupOps bounds the bytes of ops one group change carries, and
// maxSyncPayload a change: with the card attached to a session's first
// messages and the padding (64 KiB buckets) it stays within an envelope.
const (
	maxSyncGroupOps = 128 << 10
	maxSyncPayload  = 160 << 10
)

// splitOps cuts ops into runs of at most limit bytes (each with at least
// one op, and at most 4*wire.MaxGroupMembers of them), in order.
func splitOps(ops [][]byte, limit int) [][][]byte {
	var out [][][]byte
	var cur [][]byte
	size := 0
	for _, op := range ops {
		if len(cur) > 0 && (size+len(op)+8 > limit || len(cur) == 4*wire.MaxGroupMembers) {
			out, cur, size = append(out, cur), nil, 0
		}
		cur, size = append(cur, op), size+len(op)+8
	}
	return append(out, cur) // one change even for no ops
}

// SyncGroup sends group ref (id or name) to our other devices: called
// after it was left (the leave op is among its ops).
func (m *Messenger) SyncGroup(ctx context.Context, gid []byte) error {
	err := m.st.Update(ctx, func(tx *store.Tx) error { return m.syncGroup(tx, gid) })
	m.syncWake()
	return err
}

// syncDevices queues our device list.
func (m *Messenger) syncDevices(tx *store.Tx) error {
	l, err := devices.Load(tx)
	if err != nil || len(l.Entries) == 0 {
		return err
	}
	dl := &wirepb.SyncDeviceList{Version: l.Version}
	for _, e := range l.Entries {
		sd := &wirepb.SyncDevice{PeerId: e.Device.PeerID, Addrs: e.Device.Addrs, Key: e.Device.Key, Signature: e.Device.Signature,
			Name: e.Device.Name, AddedUnixMs: unixMs(e.AddedAt), LastSeenUnixMs: unixMs(e.LastSeen), RevokedUnixMs: unixMs(e.RevokedAt)}
		dl.Devices = append(dl.Devices, sd)
	}
	return m.queueSync(tx, "", &wirepb.DeviceSync{Item: &wirepb.DeviceSync_Devices{Devices: dl}})
}

// SyncSettings sends the account-wide settings (JSON, internal/app) to
// our other devices.
func (m *Messenger) SyncSettings(ctx context.Context, settings []byte) error {
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		return m.queueSync(tx, settingsKey, &wirepb.DeviceSync{Item: &wirepb.DeviceSync_Settings{Settings: settings}})
	})
	m.syncWake()
	return err
}

// OnSettingsSynced sets the function given the settings another device of
// ours sent (newer than any change applied here); it runs after the
// change is stored, outside any transaction.
func (m *Messenger) OnSettingsSynced(f func(settings []byte)) {
	m.dsync.mu.Lock()
	m.dsync.onSettings = f
	m.dsync.mu.Unlock()
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// newerChange records s as the newest change of item key if it is newer
// than the one applied (last writer wins; ties: the greater origin).
func newerChange(tx *store.Tx, key string, s *wirepb.DeviceSync) (bool, error) {
	at, origin, err := tx.SyncClock(key)
	if err == nil && (s.AtUnixMs < at || (s.AtUnixMs == at && s.Origin <= origin)) {
		return false, nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	return true, tx.PutSyncClock(key, s.AtUnixMs, s.Origin)
}

// applySync applies a change sent by peer, an active device of ours
// (receiveOwn checked it). A change that cannot apply here (a card that
// does not verify, a group op of no group) is logged and dropped, not
// refused: retrying would not mend it.
func (m *Messenger) applySync(tx *store.Tx, rx *batch, peer string, s *wirepb.DeviceSync) error {
	var err error
	switch it := s.Item.(type) {
	case *wirepb.DeviceSync_Contact:
		err = m.applySyncContact(tx, rx, s, it.Contact)
	case *wirepb.DeviceSync_Read:
		err = m.applySyncRead(tx, rx, it.Read)
	case *wirepb.DeviceSync_Channel:
		err = m.applySyncChannel(tx, rx, it.Channel)
	case *wirepb.DeviceSync_Group:
		err = m.applySyncGroup(tx, rx, it.Group)
	case *wirepb.DeviceSync_Settings:
		var ok bool
		if ok, err = newerChange(tx, settingsKey, s); ok && err == nil {
			b := it.Settings
			rx.after = append(rx.after, func() {
				m.dsync.mu.Lock()
				f := m.dsync.onSettings
				m.dsync.mu.Unlock()
				if f != nil {
					f(b)
				}
			})
		}
	case *wirepb.DeviceSync_Devices:
		err = m.applySyncDevices(tx, rx, peer, it.Devices)
	}
	if err != nil && (isPermanent(err) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrInvalid)) {
		// Not retried: the same change would fail the same way, and hold
		// up the changes queued behind it.
		m.log.Info("deviceSyncDropped", "device", shortPeer(peer), "err", err)
		return nil
	}
	return err
}

func (m *Messenger) applySyncContact(tx *store.Tx, rx *batch, s *wirepb.DeviceSync, sc *wirepb.SyncContactState) error {
	if sc.Account == m.acct {
		return nil
	}
	c, err := tx.ContactByAccount(sc.Account)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	exists := err == nil
	var card *identity.Card
	if !sc.Deleted {
		if card, err = identity.ParseSignedCard(sc.Card); err != nil || card.AccountID() != sc.Account {
			return permanent(fmt.Errorf("%w: contact card", ErrBadMessage))
		}
	}
	if ok, err := newerChange(tx, contactKey(sc.Account), s); err != nil || !ok {
		return err
	}
	if sc.Deleted {
		if !exists {
			return nil
		}
		if err := m.deleteRequest(tx, c.ID); err != nil {
			return err
		}
		m.forgetDevices()
		rx.contacts, rx.byPeer, rx.byRef = nil, nil, nil
		rx.events = append(rx.events, Event{Type: EventContact, ContactID: c.ID, State: "deleted"})
		return nil
	}
	name := CleanName(sc.Name)
	if validName(name) != nil {
		name = ""
	}
	if !exists {
		c = &store.Contact{AccountID: sc.Account, Created: m.now(), Verified: sc.Verified}
		applyCard(c, card, sc.Card)
		if c.Name, err = uniqueName(tx, firstNonEmpty(name, card.Name)); err != nil {
			return err
		}
		if err := tx.AddContact(c); err != nil {
			return err
		}
		m.devIdx.note(c.AccountID, card)
		rx.contacts = nil
		rx.events = append(rx.events, Event{Type: EventContact, ContactID: c.ID})
		if m.tr != nil && c.PeerID != "" {
			pid, addrs := c.PeerID, c.Addrs
			rx.after = append(rx.after, func() { m.tr.AddAddrs(pid, addrs) })
		}
		return nil
	}
	if held, err := identity.ParseSignedCard(c.Card); err != nil || identity.CheckDeviceVersion(held, card) == nil && card.Serial > held.Serial {
		applyCard(c, card, sc.Card)
		m.devIdx.note(c.AccountID, card)
	}
	if !c.Request.IsZero() {
		// Accepted on the other device: accepted here too (its messages
		// appear in its chat and are acked from this device as well).
		evs, err := m.promote(tx, c, "")
		if err != nil {
			return err
		}
		rx.events = append(rx.events, evs...)
		m.unindexed.Store(true)
	}
	if name != "" && name != c.Name {
		if other, err := tx.ContactByName(name); err == nil && other.ID != c.ID {
			if name, err = uniqueName(tx, name); err != nil {
				return err
			}
		}
		c.Name = name
	}
	c.Verified = sc.Verified
	if err := tx.UpdateContact(c); err != nil {
		return err
	}
	rx.byPeer, rx.byRef = nil, nil
	rx.events = append(rx.events, Event{Type: EventContact, ContactID: c.ID})
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// forgetDevices makes the index of contacts' devices be built afresh.
func (m *Messenger) forgetDevices() {
	m.devIdx.mu.Lock()
	m.devIdx.built = false
	m.devIdx.mu.Unlock()
}

func (m *Messenger) applySyncRead(tx *store.Tx, rx *batch, r *wirepb.SyncReadState) error {
	c, err := tx.ContactByAccount(r.Account)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	n := 0
	for _, raw := range r.MessageIds {
		id := hex.EncodeToString(raw)
		msg, err := tx.Message(c.ID, false, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // not here (yet): it stays unread on this device
		} else if err != nil {
			return err
		}
		if msg.State != StateReceived {
			continue
		}
		if err := tx.SetMessageState(c.ID, false, id, StateRead); err != nil {
			return err
		}
		n++
	}
	if n > 0 {
		rx.events = append(rx.events, Event{Type: EventRead, ContactID: c.ID})
	}
	return nil
}

func (m *Messenger) applySyncChannel(tx *store.Tx, rx *batch, b []byte) error {
	inv, err := wire.ParseChannelInvite(b)
	if err != nil {
		return permanent(err)
	}
	id := channel.ID(inv.OwnerPub)
	if _, err := tx.Channel(id[:]); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c := &store.Channel{ID: id[:], Name: inv.Name, OwnerPub: inv.OwnerPub, BodyKey: emptyNil(inv.BodyKey), Seeds: inv.Seeds, Created: m.now()}
	if err := tx.AddChannel(c); err != nil {
		return err
	}
	rx.after = append(rx.after, func() { m.joinChannel(c) })
	rx.events = append(rx.events, Event{Type: EventPost, Channel: hex.EncodeToString(c.ID)})
	return nil
}

// applySyncGroup installs a group from another device of ours (as linking
// does, installGroup: to read; posting there is groupdev's business) or
// adds the ops we lack to one we have.
func (m *Messenger) applySyncGroup(tx *store.Tx, rx *batch, sg *wirepb.SyncGroupState) error {
	var fresh [][]byte
	for _, raw := range sg.Ops {
		if _, err := m.ops.parse(raw, sg.Id); err != nil {
			m.log.Info("groupOpRejected", "group", shortHex(sg.Id), "from", "ownDevice", "err", err)
			continue
		}
		fresh = append(fresh, raw)
	}
	g, err := tx.Group(sg.Id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		g = &store.Group{ID: sg.Id, Secret: sg.Secret, Name: sg.Name, Created: time.UnixMilli(sg.CreatedUnixMs)}
		if err := tx.AddGroup(g); err != nil {
			return err
		}
	case err != nil:
		return err
	case len(g.Secret) == 0:
		// A placeholder: members' sender keys came before the group.
		g.Secret, g.Name = sg.Secret, sg.Name
		if err := tx.SetGroupSecret(g); err != nil {
			return err
		}
	}
	for _, op := range fresh {
		h := sha256.Sum256(op)
		if _, err := tx.PutGroupOp(g.ID, h[:], op); err != nil {
			return err
		}
	}
	m.groups.drop(g.ID)
	st, err := m.loadState(tx, g.ID)
	if err != nil {
		return err
	}
	gone := !st.isMember(m.acct)
	if gone != g.Gone {
		g.Gone = gone
		if err := tx.UpdateGroup(g); err != nil {
			return err
		}
	}
	if !g.Gone {
		gg := *g
		rx.after = append(rx.after, func() { m.joinGroup(&gg) })
	}
	rx.events = append(rx.events, Event{Type: EventGroup, Group: hex.EncodeToString(g.ID)})
	return nil
}

// applySyncDevices merges the device list another device of ours holds.
// Devices whose certificate does not verify under our account are left
// out. When the sender's list lacks something, ours is sent back.
func (m *Messenger) applySyncDevices(tx *store.Tx, rx *batch, peer string, dl *wirepb.SyncDeviceList) error {
	other := &devices.List{Version: dl.Version}
	for _, sd := range dl.Devices {
		d := identity.Device{PeerID: sd.PeerId, Addrs: sd.Addrs, Key: sd.Key, Signature: sd.Signature, Name: sd.Name}
		if err := d.Verify(m.id.Public()); err != nil {
			m.log.Info("syncedDeviceRefused", "device", shortPeer(sd.PeerId), "err", err)
			continue
		}
		other.Entries = append(other.Entries, devices.Entry{Device: d, AddedAt: fromMs(sd.AddedUnixMs),
			LastSeen: fromMs(sd.LastSeenUnixMs), RevokedAt: fromMs(sd.RevokedUnixMs)})
	}
	l, err := devices.Load(tx)
	if err != nil {
		return err
	}
	before := l.Version
	changed, tellBack := l.Merge(other, peer)
	if changed {
		if err := devices.Save(tx, l); err != nil {
			return err
		}
		// A device revoked on another of ours: our groups re-key
		// without it too (groupdevices.go).
		if err := m.ownDevicesRevoked(tx); err != nil {
			return err
		}
	}
	if tellBack {
		if err := m.syncDevices(tx); err != nil {
			return err
		}
	}
	if e := l.Find(m.selfPeer()); e != nil && e.Device.PeerID == m.selfPeer() && e.Revoked() {
		m.log.Warn("thisDeviceRevoked", "by", shortPeer(peer)) // the others send it nothing more
	}
	if l.Version != before {
		m.log.Info("deviceListSynced", "version", l.Version, "devices", len(l.Active()))
		rx.after = append(rx.after, func() {
			m.cardMu.Lock()
			m.ownCard = nil
			m.cardMu.Unlock()
			_, _ = m.card(context.Background())
			m.syncWake()
		})
	}
	return nil
}

// thenSyncContact wraps a transaction that adds or changes the contact
// *out: the contact, once it is stored, goes to our other devices.
func (m *Messenger) thenSyncContact(out **store.Contact, f func(*store.Tx) error) func(*store.Tx) error {
	return func(tx *store.Tx) error {
		if err := f(tx); err != nil {
			return err
		}
		if *out == nil {
			return nil
		}
		return m.syncContact(tx, *out, false)
	}
}

// announceDevice tells our other devices this device's addresses as it
// starts (they change with each start unless a port is configured): a
// device-list sync, which also makes this device dial them, so that what
// they queued for it while it was away comes at once.
func (m *Messenger) announceDevice(ctx context.Context, addrs []string) {
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		l, err := devices.Load(tx)
		if err != nil {
			return err
		}
		self := m.selfPeer()
		e := l.Find(self)
		if e == nil || e.Device.PeerID != self || len(l.Active()) < 2 {
			return nil
		}
		e.Device.Addrs, e.LastSeen = addrs, m.now()
		if err := devices.Save(tx, l); err != nil {
			return err
		}
		return m.syncDevices(tx)
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("deviceAnnounceFailed", "err", err)
	}
	m.syncWake()
}

// ownDeviceConnected makes what is queued for peer, if it is an active
// device of ours, due at once: it is back.
func (m *Messenger) ownDeviceConnected(ctx context.Context, peer string) {
	own := false
	_ = m.st.View(ctx, func(tx *store.Tx) error { // most peers are not ours: no write for them
		l, err := devices.Load(tx)
		own = err == nil && l.IsActive(peer) && peer != m.selfPeer()
		return err
	})
	if !own {
		return
	}
	_ = m.st.Update(ctx, func(tx *store.Tx) error { return tx.DeviceDueNow(peer, m.now()) })
	m.wake()
}

// blobSettings is where internal/app keeps the settings (JSON).
const blobSettings = "settings"

// syncSnapshot sends our other devices what linking does not hand over:
// the channels we follow or own, and the settings as last changed (under
// that change's own time, so that it never overrides a newer one). Sent
// when the device list changed (a device linked); idempotent for the
// devices that have it all.
func (m *Messenger) syncSnapshot(tx *store.Tx) error {
	cs, err := tx.Channels()
	if err != nil {
		return err
	}
	for i := range cs {
		if err := m.syncChannel(tx, &cs[i]); err != nil {
			return err
		}
	}
	at, origin, err := tx.SyncClock(settingsKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never changed: each device has the defaults
	} else if err != nil {
		return err
	}
	b, err := tx.Blob(blobSettings)
	if errors.Is(err, store.ErrNotFound) || len(b) == 0 || len(b) > wire.MaxSyncSettings {
		return nil
	} else if err != nil {
		return err
	}
	return m.queueSync(tx, "", &wirepb.DeviceSync{AtUnixMs: at, Origin: origin, Item: &wirepb.DeviceSync_Settings{Settings: b}})
}
