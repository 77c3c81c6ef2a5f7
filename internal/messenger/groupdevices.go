package messenger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Sender keys per device (issue 17; docs/ARCHITECTURE.md, "Groups on
// several devices"). Each device of a member has a sender-key chain of its
// own: the group envelope names the device that sent it (its peer id) and
// receivers keep keys per (group, member, device, epoch); an envelope or
// key from a node before this names no device and maps to the member's
// one key, as then. A device's key goes over the pairwise sessions to
// every device of every member (queueGroupControl fans out to the
// member's devices) and to its own account's other devices (queueOwn).
// A device that a member's card drops (revoked) is refused as a sender,
// its keys are forgotten, and every group shared with that account is
// marked: each device makes a new key, which the dropped device never
// gets, before its next message there (ownSender).

// Key epochs: a sender key's epoch is the membership epoch (groupState,
// one per removal or departure) in its high 16 bits and the number of
// re-keys for dropped devices within it in the low 16, so that a re-key
// never reuses an epoch number a receiver holds a key under. Nodes from
// before this used the membership epoch itself; a key of theirs is read
// by its number like any other. Numbers repeat only past 65,535 removals
// in one group, or 65,535 re-keys within one membership epoch (a repeated
// number replaces the receivers' older key of it: late messages under
// that key are lost, nothing is read that should not be).
const rekeyBits = 16

func keyEpoch(membership, rekey uint32) uint32 { return membership<<rekeyBits | rekey&(1<<rekeyBits-1) }

func membershipEpoch(k uint32) uint32 { return k >> rekeyBits }

// keyOwner names whose sender key a stored key is (store.PutGroupKey):
// the account for a key from a node before sender keys per device (no
// tag), else account/device tag in hex.
func keyOwner(acct string, tag []byte) string {
	if len(tag) == 0 {
		return acct
	}
	return acct + "/" + hex.EncodeToString(tag)
}

// deviceTag is the short name of a device in group envelopes and
// controls (wire.DeviceTagSize bytes; GroupEnvelope.device): a hash of
// its peer id. Tags are compared only among one account's devices, all
// certified by that account.
func deviceTag(peer string) []byte {
	h := sha256.Sum256([]byte("samizdat/group/v1/device\x00" + peer))
	return h[:wire.DeviceTagSize]
}

// selfTag is this device's tag.
func (m *Messenger) selfTag() []byte { return deviceTag(m.selfPeer()) }

// shortTag is a device tag for logs.
func shortTag(tag []byte) string { return hex.EncodeToString(tag) }

// groupKeyFor finds the key of acct's device for epoch and says under
// which owner it is stored: the device's own key, else the member's one
// key from before keys per device (a member that upgraded names its
// device before its next new key: the key it had is the one we hold).
// Only the holder of a chain's signing key can write under it, so the
// fallback lets no other device speak for that chain; and it is taken
// only for a message msg signed under it: another device's first key
// (of epoch 0, as the one key was) has not come yet (store.ErrNotFound),
// its message is not bad.
func groupKeyFor(tx *store.Tx, gid []byte, acct string, device []byte, epoch uint32, msg []byte) (string, []byte, error) {
	owner := keyOwner(acct, device)
	kb, err := tx.GroupKey(gid, owner, epoch)
	if errors.Is(err, store.ErrNotFound) && len(device) > 0 {
		owner = acct
		if kb, err = tx.GroupKey(gid, owner, epoch); err == nil {
			r, rerr := senderkey.UnmarshalReceiver(kb)
			if rerr != nil {
				return owner, nil, rerr
			}
			if _, _, verr := senderkey.VerifySignature(r.SigningKey(), msg); verr != nil {
				return owner, nil, store.ErrNotFound
			}
		}
	}
	return owner, kb, err
}

// devState is what an account's current card says of one of its devices.
type devState int

const (
	devListed  devState = iota // listed (or no device named: a node from before)
	devUnknown                 // not listed, not known to be dropped: perhaps linked since our copy of the card
	devDropped                 // listed before, dropped since (revoked)
)

// errDroppedDevice is the verdict on a group message from a device its
// account's card no longer lists.
var errDroppedDevice = errors.New("group message from a revoked device")

// deviceState tells whether acct's current card (our device list, for our
// own account) lists the device tagged tag.
func (m *Messenger) deviceState(tx *store.Tx, acct string, tag []byte) devState {
	if len(tag) == 0 {
		return devListed
	}
	is := func(peer string) bool { return bytes.Equal(deviceTag(peer), tag) }
	if acct == m.acct {
		l, err := devices.Load(tx)
		if err != nil || len(l.Entries) == 0 {
			return devUnknown
		}
		state := devUnknown
		for _, e := range l.Entries {
			if is(e.Device.PeerID) {
				if !e.Revoked() {
					return devListed
				}
				state = devDropped
			}
		}
		return state
	}
	c, err := tx.ContactByAccount(acct)
	if err != nil {
		return devUnknown
	}
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil || len(card.Devices) == 0 || slices.ContainsFunc(card.PeerIDs(), is) {
		return devListed
	}
	if b, err := tx.Blob(droppedBlob(acct)); err == nil && slices.ContainsFunc(strings.Fields(string(b)), is) {
		return devDropped
	}
	return devUnknown
}

// Blobs of this file: the devices a contact's card dropped (by account),
// the groups whose next message needs a new key first, and the revoked
// devices of our own account already acted on.
func droppedBlob(acct string) string { return "groupdev/dropped/" + acct }
func rekeyBlob(gid []byte) string    { return "groupdev/rekey/" + hex.EncodeToString(gid) }
func resendBlob(gid []byte) string   { return "groupdev/resend/" + hex.EncodeToString(gid) }

const (
	ownRevokedBlob = "groupdev/own-revoked"
	ownKnownBlob   = "groupdev/own-known" // our active devices, as ownDevicesAdded last saw them
)

// maxDroppedKept bounds the dropped devices remembered per account.
const maxDroppedKept = 64

// cardDroppedDevices is refreshCard's hook: the contact's card that
// replaces old drops some devices (revoked), or lists new ones
// (cardAddedDevices).
func (m *Messenger) cardDroppedDevices(tx *store.Tx, acct string, prev []byte, card *identity.Card) {
	old, err := identity.ParseSignedCard(prev)
	if err != nil || card == nil {
		return
	}
	if err := m.cardAddedDevices(tx, acct, old, card); err != nil {
		m.log.Warn("groupKeyResendNotMarked", "contact", identity.Short(acct), "err", err)
	}
	var gone []string
	for _, p := range old.PeerIDs() {
		if !card.HasDevice(p) {
			gone = append(gone, p)
		}
	}
	if len(gone) == 0 {
		return
	}
	held, _ := tx.Blob(droppedBlob(acct))
	list := strings.Fields(string(held))
	for _, p := range gone {
		if !slices.Contains(list, p) {
			list = append(list, p)
		}
	}
	if len(list) > maxDroppedKept {
		list = list[len(list)-maxDroppedKept:]
	}
	if err := tx.PutBlob(droppedBlob(acct), []byte(strings.Join(list, "\n"))); err != nil {
		m.log.Warn("groupDevicesNotDropped", "contact", identity.Short(acct), "err", err)
		return
	}
	if err := m.dropGroupDevices(tx, acct, gone); err != nil {
		m.log.Warn("groupDevicesNotDropped", "contact", identity.Short(acct), "err", err)
	}
}

// cardAddedDevices marks every group we share with acct, whose card now
// lists devices that the one it replaces did not: our sender key goes to
// acct's devices again before our next message there (ownSender). A
// device linked before we held the card that lists it missed the key we
// made meanwhile (a group made or joined, a new epoch): sent only to the
// devices we knew, it reached no other (its account's other devices hand
// over no key but their own), and the device could not read us until
// our next new key. O(groups) and rare (a device linked).
func (m *Messenger) cardAddedDevices(tx *store.Tx, acct string, old, card *identity.Card) error {
	added := false
	for _, p := range card.PeerIDs() {
		if !old.HasDevice(p) {
			added = true
		}
	}
	if !added {
		return nil
	}
	return m.markResend(tx, acct)
}

// markResend marks every group we share with acct (ours: every group)
// for resendKey.
func (m *Messenger) markResend(tx *store.Tx, acct string) error {
	gs, err := tx.Groups()
	if err != nil {
		return err
	}
	for _, g := range gs {
		if g.Gone || len(g.Secret) == 0 || len(g.Sender) == 0 {
			continue // no key of ours yet: the first one goes to every device
		}
		st, err := m.loadState(tx, g.ID)
		if err != nil {
			return err
		}
		if !st.isMember(acct) || !st.isMember(m.acct) {
			continue
		}
		held, _ := tx.Blob(resendBlob(g.ID))
		list := strings.Fields(string(held))
		if slices.Contains(list, acct) {
			continue
		}
		if err := tx.PutBlob(resendBlob(g.ID), []byte(strings.Join(append(list, acct), "\n"))); err != nil {
			return err
		}
	}
	return nil
}

// resendKey queues our current sender key s of g again to the members
// cardAddedDevices marked (every device their cards list), before our
// next message there.
func (m *Messenger) resendKey(tx *store.Tx, rx *batch, g *store.Group, st *groupState, s *senderkey.Sender) error {
	held, err := tx.Blob(resendBlob(g.ID))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if err := tx.DeleteBlob(resendBlob(g.ID)); err != nil {
		return err
	}
	if st == nil {
		if st, err = m.loadState(tx, g.ID); err != nil {
			return err
		}
	}
	dist := s.Distribution().Marshal()
	for _, a := range strings.Fields(string(held)) {
		if a == m.acct {
			if err := m.queueOwn(tx, g, st, &wirepb.GroupControl{GroupId: g.ID, SenderKey: dist, Device: m.selfTag()}); err != nil {
				return err
			}
			continue
		}
		if !st.isMember(a) {
			continue
		}
		if err := m.queueGroupControl(tx, rx, st, nil, a, &wirepb.GroupControl{GroupId: g.ID, SenderKey: dist}); err != nil {
			return err
		}
	}
	return nil
}

// ownDevicesRevoked is DevicesChanged's hook: the devices of our own
// account revoked since it last ran are dropped from our groups; if some
// were added (ownDevicesAdded), our key goes to our devices again.
func (m *Messenger) ownDevicesRevoked(tx *store.Tx) error {
	l, err := devices.Load(tx)
	if err != nil {
		return err
	}
	if err := m.ownDevicesAdded(tx, l); err != nil {
		return err
	}
	held, _ := tx.Blob(ownRevokedBlob)
	seen := strings.Fields(string(held))
	var gone []string
	for _, e := range l.Entries {
		if e.Revoked() && !slices.Contains(seen, e.Device.PeerID) {
			gone = append(gone, e.Device.PeerID)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if err := tx.PutBlob(ownRevokedBlob, []byte(strings.Join(append(seen, gone...), "\n"))); err != nil {
		return err
	}
	return m.dropGroupDevices(tx, m.acct, gone)
}

// ownDevicesAdded marks our groups when our list has active devices it
// did not have when this last ran: before our next message in each, our
// key goes again to our other devices (resendKey). A device linked on
// another device of ours while this one was away missed the keys this
// one made meanwhile (sent to the devices it knew), and could not read it
// until its next new key. The first run only notes the list.
func (m *Messenger) ownDevicesAdded(tx *store.Tx, l *devices.List) error {
	held, err := tx.Blob(ownKnownBlob)
	first := errors.Is(err, store.ErrNotFound)
	if err != nil && !first {
		return err
	}
	known := strings.Fields(string(held))
	var now []string
	added := false
	for _, d := range l.Active() {
		now = append(now, d.PeerID)
		added = added || (!slices.Contains(known, d.PeerID) && d.PeerID != m.selfPeer())
	}
	if !first && !added {
		return nil
	}
	if err := tx.PutBlob(ownKnownBlob, []byte(strings.Join(now, "\n"))); err != nil {
		return err
	}
	if first {
		return nil
	}
	return m.markResend(tx, m.acct)
}

// dropGroupDevices forgets the sender keys of acct's devices gone in
// every group we share with acct, and marks each such group to be
// re-keyed before our next message in it. O(groups) and rare (a device
// revoked).
func (m *Messenger) dropGroupDevices(tx *store.Tx, acct string, gone []string) error {
	gs, err := tx.Groups()
	if err != nil {
		return err
	}
	for _, g := range gs {
		if g.Gone || len(g.Secret) == 0 {
			continue
		}
		st, err := m.loadState(tx, g.ID)
		if err != nil {
			return err
		}
		if !st.isMember(acct) || !st.isMember(m.acct) {
			continue
		}
		for _, p := range gone {
			if err := tx.DeleteGroupKeys(g.ID, keyOwner(acct, deviceTag(p))); err != nil {
				return err
			}
		}
		if err := tx.PutBlob(rekeyBlob(g.ID), []byte{1}); err != nil {
			return err
		}
		m.log.Info("groupRekeyDue", "group", shortHex(g.ID), "member", identity.Short(acct), "devices", len(gone))
	}
	return nil
}

// ownSender returns this device's sender key for g, making a new one (and
// queueing it to every device of every member and to our own other
// devices) if it has none yet (a device linked after the group was
// joined), if its key is not of the current membership epoch, or if a
// device was dropped since it was made (the group is marked). fresh
// reports a new key. With st nil (a message: afterStateChange keeps the
// key of the current epoch) the membership is read only to make a key.
func (m *Messenger) ownSender(tx *store.Tx, rx *batch, g *store.Group, st *groupState) (s *senderkey.Sender, fresh bool, err error) {
	s, err = senderkey.UnmarshalSender(g.Sender)
	_, markErr := tx.Blob(rekeyBlob(g.ID))
	marked := markErr == nil
	if markErr != nil && !errors.Is(markErr, store.ErrNotFound) {
		return nil, false, markErr
	}
	if err == nil && !marked && (st == nil || membershipEpoch(s.Epoch()) == st.epoch) {
		// Members with a device we learned of since: our key again.
		return s, false, m.resendKey(tx, rx, g, st, s)
	}
	if st == nil {
		if st, err = m.loadState(tx, g.ID); err != nil {
			return nil, false, err
		}
		if !st.isMember(m.acct) {
			return nil, false, ErrNotMember
		}
		s, err = senderkey.UnmarshalSender(g.Sender)
	}
	rekey := uint32(0)
	if err == nil && membershipEpoch(s.Epoch()) == st.epoch {
		rekey = s.Epoch()&(1<<rekeyBits-1) + 1
	}
	if s, err = senderkey.New(m.rand, keyEpoch(st.epoch, rekey)); err != nil {
		return nil, false, err
	}
	g.Sender = s.Marshal()
	if err := tx.UpdateGroup(g); err != nil {
		return nil, false, err
	}
	if err := tx.DeleteBlob(resendBlob(g.ID)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, false, err // the new key goes to every device
	}
	if marked {
		if err := tx.DeleteBlob(rekeyBlob(g.ID)); err != nil {
			return nil, false, err
		}
		m.log.Info("groupRekeyed", "group", shortHex(g.ID), "epoch", s.Epoch()) // without the dropped devices
	}
	if err := m.distributeKey(tx, rx, g, st, nil, st.memberIDs(), s); err != nil {
		return nil, false, err
	}
	return s, true, nil
}

// distributeKey queues our sender key s to the members to (each of their
// devices) and, when to is every member, to our own other devices.
func (m *Messenger) distributeKey(tx *store.Tx, rx *batch, g *store.Group, st, old *groupState, to []string, s *senderkey.Sender) error {
	dist := s.Distribution().Marshal()
	all := false
	for _, a := range to {
		if a == m.acct {
			all = true
			continue
		}
		if err := m.queueGroupControl(tx, rx, st, old, a, &wirepb.GroupControl{GroupId: g.ID, SenderKey: dist}); err != nil {
			return err
		}
	}
	if !all {
		return nil
	}
	return m.queueOwn(tx, g, st, &wirepb.GroupControl{GroupId: g.ID, SenderKey: dist, Device: m.selfTag()})
}

// queueOwn queues a GroupControl (our sender key, ops we made) to every
// other active device of our account, through the device outbox, under
// contact 0 (our own account, as devsync.go): a group with no other
// member we hold as a contact reaches our devices too.
func (m *Messenger) queueOwn(tx *store.Tx, g *store.Group, st *groupState, gc *wirepb.GroupControl) error {
	own, err := m.ownOtherDevices(tx)
	if err != nil || len(own) == 0 {
		return err
	}
	id := make([]byte, wire.MessageIDSize)
	if _, err := io.ReadFull(m.rand, id); err != nil {
		return err
	}
	b := wire.Marshal(&wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Group{Group: gc}})
	now := m.now()
	for _, d := range own {
		it := store.DeviceItem{ContactID: 0, PeerID: d.PeerID, Own: true, MessageID: groupItemPrefix + hex.EncodeToString(id), Payload: b, NextAttempt: now}
		if err := tx.EnqueueDevice(it); err != nil {
			return err
		}
	}
	return nil
}

// receiveOwnGroup takes a GroupControl from another device of our
// account (peer, active: receiveOwn checked it): its sender key, ops it
// made. A device hands out only its own key.
func (m *Messenger) receiveOwnGroup(tx *store.Tx, rx *batch, peer string, gc *wirepb.GroupControl) error {
	if len(gc.SenderKey) > 0 && !bytes.Equal(gc.Device, deviceTag(peer)) {
		m.log.Warn("senderKeyRejected", "group", shortHex(gc.GroupId), "device", shortPeer(peer), "reason", "another device's key")
		return nil
	}
	self := &store.Contact{AccountID: m.acct}
	return m.receiveGroupControl(tx, rx, self, gc)
}
