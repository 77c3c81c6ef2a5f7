package messenger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// The receiving side of groups: control messages from the 1:1 sessions,
// messages from the topic and from members' history.

// receiveGroupControl handles a GroupControl from contact c inside the
// receive transaction: ops (verified one by one; bad ones are logged
// without content and skipped), an invitation, a sender key.
func (m *Messenger) receiveGroupControl(tx *store.Tx, rx *batch, c *store.Contact, gc *wirepb.GroupControl) error {
	g, err := tx.Group(gc.GroupId)
	isNew, placeholder := false, false
	switch {
	case errors.Is(err, store.ErrNotFound) && len(gc.Secret) == 0:
		if len(gc.SenderKey) == 0 {
			m.fault(FaultUnknownGroup, identity.Short(c.AccountID))
			return nil
		}
		// A member's sender key can overtake the admin's invitation (they
		// come from different people): keep it under a placeholder, a
		// group row without a secret, until the invitation comes.
		// Bounded per contact: a contact cannot make us keep keys for
		// any number of made-up groups.
		n, err := tx.PlaceholdersKeyedBy(c.AccountID)
		if err != nil {
			return err
		}
		if n >= maxPlaceholdersPerContact {
			m.fault(FaultUnknownGroup, identity.Short(c.AccountID), "kept", false)
			return nil
		}
		m.fault(FaultUnknownGroup, identity.Short(c.AccountID), "kept", true)
		g = &store.Group{ID: gc.GroupId, Secret: []byte{}, Gone: true, Created: m.now()}
		if err := tx.AddGroup(g); err != nil {
			return err
		}
		return m.storeSenderKey(tx, g, nil, c.AccountID, gc.Device, gc.SenderKey)
	case errors.Is(err, store.ErrNotFound):
		g = &store.Group{ID: gc.GroupId, Secret: gc.Secret, Name: gc.Name, Created: m.now()}
		isNew = true
	case err != nil:
		return err
	case len(g.Secret) == 0:
		if len(gc.Secret) == 0 {
			return m.storeSenderKey(tx, g, nil, c.AccountID, gc.Device, gc.SenderKey)
		}
		g.Secret, g.Name, isNew, placeholder = gc.Secret, gc.Name, true, true
	}
	if isNew && g.Name == "" {
		g.Name = "group"
	}
	var old *groupState
	if !isNew {
		if old, err = m.loadState(tx, g.ID); err != nil {
			return err
		}
	}
	var fresh [][]byte
	for _, raw := range gc.Ops {
		o, err := m.ops.parse(raw, g.ID)
		if err != nil {
			m.log.Warn("groupOpRejected", "group", shortHex(g.ID), "from", identity.Short(c.AccountID), "err", err)
			continue
		}
		fresh = append(fresh, o.raw)
	}
	if isNew {
		// Only an admin's invitation that makes us a member creates the
		// group here.
		ops := make([]*groupOp, 0, len(fresh))
		for _, r := range fresh {
			o, _ := m.ops.parse(r, g.ID)
			ops = append(ops, o)
		}
		st := computeState(ops)
		if !st.isMember(m.acct) || !st.isAdmin(c.AccountID) {
			// Perhaps a part of a split invitation: keep nothing until the
			// part that makes us a member; the admin sends every part.
			if !st.created || len(fresh) == 0 {
				m.log.Info("groupControlIgnored", "from", identity.Short(c.AccountID), "reason", "incomplete invitation")
				return nil
			}
		}
		g.Gone = !st.isMember(m.acct)
		if placeholder {
			if err := tx.SetGroupSecret(g); err != nil {
				return err
			}
		} else if err := tx.AddGroup(g); err != nil {
			return err
		}
		old = &groupState{members: map[string]*groupMember{}}
	}
	var added [][]byte
	for _, r := range fresh {
		h := sha256.Sum256(r)
		ok, err := tx.PutGroupOp(g.ID, h[:], r)
		if err != nil {
			return err
		}
		if ok {
			added = append(added, r)
		}
	}
	if !isNew && len(added) > 0 && c.AccountID != m.acct {
		// A member's ops reach the devices of ours its copy of our card
		// lists: one linked since it got that card learns them from us
		// (else it would keep a removed member, and hand it its key).
		if err := m.queueOwn(tx, g, nil, &wirepb.GroupControl{GroupId: g.ID, Ops: added}); err != nil {
			return err
		}
	}
	m.groups.drop(g.ID)
	st, err := m.loadState(tx, g.ID)
	if err != nil {
		return err
	}
	if isNew && st.isMember(m.acct) {
		if err := m.syncGroup(tx, g.ID); err != nil { // devsync.go: joined on our other devices too
			return err
		}
	}
	if len(gc.SenderKey) > 0 {
		if err := m.storeSenderKey(tx, g, st, c.AccountID, gc.Device, gc.SenderKey); err != nil {
			return err
		}
	}
	if len(fresh) > 0 || isNew {
		if err := m.afterStateChange(tx, rx, g, old, st); err != nil {
			return err
		}
		// New members' messages may have come before the ops that add them.
		if err := m.resolvePending(tx, g, st, ""); err != nil {
			return err
		}
	}
	if err := m.settleOwed(tx, rx, g, c.AccountID); err != nil {
		return err
	}
	gid := g.ID
	rx.after = append(rx.after, func() { m.groups.drop(gid) })
	return nil
}

const (
	// maxPlaceholdersPerContact bounds the groups we do not know yet for
	// which one contact's sender keys are kept (waiting for an invitation
	// that may come from someone else).
	maxPlaceholdersPerContact = 32
	// maxKeyEpochs bounds the sender-key epochs kept per member: a late
	// message of an older epoch is still read, an endless series is not
	// kept.
	maxKeyEpochs = 8
)

// storeSenderKey keeps the sender key of a member's device (none: a node
// from before keys per device) and reads the messages that were waiting
// for it. The key of a device the member's card dropped is refused.
func (m *Messenger) storeSenderKey(tx *store.Tx, g *store.Group, st *groupState, acct string, device, b []byte) error {
	d, err := senderkey.ParseDistribution(b)
	if err != nil {
		m.log.Warn("senderKeyRejected", "group", shortHex(g.ID), "from", identity.Short(acct), "err", err)
		return nil
	}
	// Only a device the member's card lists: a revoked one gets no say,
	// and a contact cannot make us keep keys for made-up devices (a new
	// device's first message to us carries the card that lists it).
	switch m.deviceState(tx, acct, device) {
	case devDropped:
		m.log.Warn("senderKeyRejected", "group", shortHex(g.ID), "from", identity.Short(acct), "device", shortTag(device), "reason", "revoked device")
		return nil
	case devUnknown:
		m.log.Warn("senderKeyRejected", "group", shortHex(g.ID), "from", identity.Short(acct), "device", shortTag(device), "reason", "device not on the card")
		return nil
	}
	owner := keyOwner(acct, device)
	// The key is kept even from someone we do not (yet) know as a member:
	// the op adding them may still be on its way. Their messages are read
	// only while they are members (receiveGroupMessages).
	r, err := senderkey.NewReceiver(d, senderkey.Config{})
	if err != nil {
		return nil
	}
	if old, err := tx.GroupKey(g.ID, owner, d.Epoch); err == nil {
		if or, err := senderkey.UnmarshalReceiver(old); err == nil && bytes.Equal(or.SigningKey(), r.SigningKey()) {
			return nil // the same key again: keep our state of it
		}
	}
	if err := tx.PutGroupKey(g.ID, owner, d.Epoch, r.Marshal()); err != nil {
		return err
	}
	if err := tx.TrimGroupKeys(g.ID, owner, maxKeyEpochs); err != nil {
		return err
	}
	if st == nil {
		if st, err = m.loadState(tx, g.ID); err != nil {
			return err
		}
	}
	return m.resolvePending(tx, g, st, acct)
}

// resolvePending reads the waiting messages of members (of one member if
// only is set) whose keys we hold: a message waits for its sender's key,
// and one from a sender not known as a member waits for the op that adds
// them. A message that predates the key we were given (sent before its
// sender knew we were a member) can never be read: it stays stored, for
// others' history, and is counted once per key, not retried in a loop.
func (m *Messenger) resolvePending(tx *store.Tx, g *store.Group, st *groupState, only string) error {
	pending, err := tx.PendingGroupMessages(g.ID)
	if err != nil {
		return err
	}
	unreadable := 0
	for _, pm := range pending {
		if (only != "" && pm.Sender != only) || !st.isMember(pm.Sender) {
			continue
		}
		if _, _, err := m.openGroupMessage(tx, g, pm.Sender, pm.Raw, &pm); err != nil && !errors.Is(err, errNoKey) && !errors.Is(err, errDroppedDevice) {
			unreadable++
		}
	}
	if unreadable > 0 {
		m.fault(FaultStaleGroupMsg, shortHex(g.ID), "count", unreadable)
	}
	return nil
}

var errNoKey = errors.New("sender key not received yet")

// errUnknownSender is checkGroupEnvelope's verdict on a sender we do not
// know as a member, nor as removed.
var errUnknownSender = errors.New("sender not known as a member")

// openGroupMessage decrypts a stored (pending) or new message with the
// sender's key; with pm set it resolves that pending row.
//
// A receiver left with skipped keys means an earlier message of that
// sender is missing (withheld, or published before we were in the mesh):
// gap reports it, so that we fetch it from the members' history.
func (m *Messenger) openGroupMessage(tx *store.Tx, g *store.Group, sender string, raw []byte, pm *store.GroupMessage) (t *wirepb.GroupText, gap bool, err error) {
	env, err := wire.ParseGroupEnvelope(raw)
	if err != nil {
		return nil, false, err
	}
	epoch, _, err := senderkey.PeekEpoch(env.Message)
	if err != nil {
		return nil, false, err
	}
	switch m.deviceState(tx, sender, env.Device) {
	case devDropped:
		return nil, false, errDroppedDevice
	case devUnknown:
		return nil, false, errNoKey // perhaps linked since the card we hold: wait for its card and key
	}
	owner, kb, err := groupKeyFor(tx, g.ID, sender, env.Device, epoch, env.Message)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, errNoKey
	} else if err != nil {
		return nil, false, err
	}
	r, err := senderkey.UnmarshalReceiver(kb)
	if err != nil {
		return nil, false, err
	}
	pt, err := r.Decrypt(env.Message)
	if err != nil {
		return nil, false, err
	}
	unpadded, err := wire.Unpad(pt)
	if err != nil {
		return nil, false, err
	}
	if t, err = wire.ParseGroupText(unpadded); err != nil {
		return nil, false, err
	}
	if len(t.Cards) > 0 {
		t.Body = groupCardsBody // kept for history, never shown
		if err := m.receivedCards(tx, g, sender, t.Cards); err != nil {
			m.log.Warn("groupCardsNotTaken", "group", shortHex(g.ID), "err", err)
			return nil, false, err
		}
	}
	if err := tx.PutGroupKey(g.ID, owner, epoch, r.Marshal()); err != nil {
		return nil, false, err
	}
	if err := m.receivedGroupFile(tx, g, sender, groupMsgID(raw), t.Attachment); err != nil {
		return nil, false, err
	}
	if pm != nil {
		if err := tx.ResolveGroupMessage(g.ID, pm.ID, sender, t.Body, time.UnixMilli(t.SentAtUnixMs)); err != nil {
			return nil, false, err
		}
	}
	return t, r.SkippedKeys() > 0, nil
}

// joinGroup subscribes to a group's topic.
func (m *Messenger) joinGroup(g *store.Group) {
	gid := bytes.Clone(g.ID)
	topic := groupTopic(g.Secret)
	m.join(topic, &joined{group: gid},
		func(ctx context.Context, from string, data []byte) p2p.Verdict {
			if err := m.checkGroupEnvelope(ctx, gid, data); err != nil {
				if errors.Is(err, errNoKey) {
					return p2p.Accept // others may judge it; we keep it pending
				}
				if errors.Is(err, errUnknownSender) {
					// Perhaps added by an op still on its way to us: kept
					// pending until the op comes, not passed on (not ours
					// to judge yet).
					m.receiveGroupMessages(ctx, gid, topic, from, [][]byte{data}, false)
					return p2p.Ignore
				}
				m.log.Warn("groupMessageRejected", "group", shortHex(gid), "peer", shortPeer(from), "err", err)
				return p2p.Reject
			}
			return p2p.Accept
		},
		func(ctx context.Context, from string, data []byte) {
			m.receiveGroupMessages(ctx, gid, topic, from, [][]byte{data}, true)
		},
		func(ctx context.Context) { m.fillGroup(ctx, gid, topic) })
}

// checkGroupEnvelope is the topic validator: the sender must be a member
// and, if we hold its key, the signature must verify.
func (m *Messenger) checkGroupEnvelope(ctx context.Context, gid, data []byte) error {
	env, err := wire.ParseGroupEnvelope(data)
	if err != nil {
		return err
	}
	st, err := m.cachedState(ctx, gid)
	if err != nil {
		return err
	}
	if st.removed[env.Sender] {
		return fmt.Errorf("%w: sender %s was removed", ErrNotMember, identity.Short(env.Sender))
	}
	if !st.isMember(env.Sender) {
		return errUnknownSender // perhaps added by an op still on its way to us
	}
	epoch, _, err := senderkey.PeekEpoch(env.Message)
	if err != nil {
		return err
	}
	var kb []byte
	err = m.st.View(ctx, func(tx *store.Tx) (err error) {
		switch m.deviceState(tx, env.Sender, env.Device) {
		case devDropped:
			return errDroppedDevice
		case devUnknown:
			return store.ErrNotFound // perhaps linked since the card we hold: kept until its key comes
		}
		_, kb, err = groupKeyFor(tx, gid, env.Sender, env.Device, epoch, env.Message)
		return err
	})
	if errors.Is(err, errDroppedDevice) {
		m.log.Info("revokedDeviceRefused", "group", shortHex(gid), "member", identity.Short(env.Sender), "device", shortTag(env.Device))
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		return errNoKey
	} else if err != nil {
		return err
	}
	r, err := senderkey.UnmarshalReceiver(kb)
	if err != nil {
		return err
	}
	_, _, err = senderkey.VerifySignature(r.SigningKey(), env.Message)
	return err
}

// receiveGroupMessages stores group messages from the topic or from a
// history fetch: read at once if we hold the sender's key, else kept
// pending until it arrives.
func (m *Messenger) receiveGroupMessages(ctx context.Context, gid []byte, topic, from string, items [][]byte, refill bool) {
	st, err := m.cachedState(ctx, gid)
	if err != nil {
		return
	}
	stored, bad, gap := 0, 0, false
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		stored, bad, gap = 0, 0, false
		g, err := tx.Group(gid)
		if err != nil {
			return err
		}
		if g.Gone {
			return nil
		}
		st := st
		for _, raw := range items {
			env, err := wire.ParseGroupEnvelope(raw)
			if err == nil && !st.isMember(env.Sender) && !st.removed[env.Sender] {
				// The membership was read before this transaction: the op
				// adding the sender (and its key, whose arrival reads the
				// waiting messages) may have been committed since. Kept
				// pending on a stale view, the message would wait for
				// nothing.
				if st, err = m.loadState(tx, gid); err != nil {
					return err
				}
			}
			if err != nil || st.removed[env.Sender] || env.Sender == "" {
				bad++
				continue
			}
			if env.Sender == m.acct && (len(env.Device) == 0 || bytes.Equal(env.Device, m.selfTag())) {
				continue // ours, from this device (a node from before named none)
			}
			gm := &store.GroupMessage{GroupID: gid, ID: groupMsgID(raw), Sender: env.Sender, At: m.now(), Raw: raw}
			var t *wirepb.GroupText
			var skipped bool
			if st.isMember(env.Sender) {
				t, skipped, err = m.openGroupMessage(tx, g, env.Sender, raw, nil)
			} else {
				err = errNoKey // a sender added by an op still on its way: wait for it (resolvePending)
			}
			switch {
			case err == nil:
				gm.Body, gm.SentAt = t.Body, time.UnixMilli(t.SentAtUnixMs)
				gap = gap || skipped
			case errors.Is(err, errNoKey):
				gm.Pending = true
			case errors.Is(err, senderkey.ErrReplay):
				continue // a copy of one we have read
			case errors.Is(err, errDroppedDevice):
				m.log.Info("revokedDeviceRefused", "group", shortHex(gid), "member", identity.Short(env.Sender), "device", shortTag(env.Device))
				bad++
				continue
			default:
				bad++
				continue
			}
			ok, err := tx.PutGroupMessage(gm)
			if err != nil {
				return err
			}
			if ok {
				stored++
			} else if !gm.Pending {
				// Stored before, pending (its key or its sender's op came
				// since): the key was just used on it, so it must be
				// resolved now or never be readable again.
				if err := tx.ResolveGroupMessage(gid, gm.ID, gm.Sender, gm.Body, gm.SentAt); err != nil {
					return err
				}
				stored++
			}
		}
		return nil
	})
	if bad > 0 {
		m.log.Warn("groupMessageRejected", "group", shortHex(gid), "peer", shortPeer(from), "count", bad)
	}
	if err != nil && ctx.Err() == nil {
		m.log.Warn("groupMessageNotStored", "group", shortHex(gid), "err", err)
	}
	if stored > 0 {
		m.emit(Event{Type: EventGroup, Group: hex.EncodeToString(gid)})
	}
	if gap && refill {
		if j := m.joinedTopic(topic); j != nil {
			kickJoined(j)
		}
	}
}

// fillGroup asks a couple of members for the messages of the last while
// (what we missed while down, or while not in the mesh yet), verifying
// each like a message from the topic.
func (m *Messenger) fillGroup(ctx context.Context, gid []byte, topic string) {
	if m.tr == nil {
		return
	}
	var since time.Time
	var seeds []string
	err := m.st.View(ctx, func(tx *store.Tx) error {
		g, err := tx.Group(gid)
		if err != nil {
			return err
		}
		// Not from when the invitation reached us: what members posted
		// while it travelled would be left out (the asked peer compares
		// its own receive times).
		since = g.Created.Add(-groupHistoryWait)
		ms, err := tx.RecentGroupMessages(gid, time.Time{}, 1)
		if err != nil {
			return err
		}
		if len(ms) > 0 {
			since = ms[0].At.Add(-groupHistoryWait)
		}
		// A routine check asks only for what arrived since the last
		// one: a quiet group's last messages are not fetched again and
		// again (the idle cost).
		if j := m.joinedTopic(topic); j != nil {
			if c := j.checked.Load(); c > 0 {
				since = maxTime(since, time.UnixMilli(c).Add(-groupHistoryWait))
			}
		}
		return nil
	})
	if err != nil {
		return
	}
	if st, err := m.cachedState(ctx, gid); err == nil {
		cards := m.memberCards(ctx, st)
		for _, a := range st.memberIDs() {
			if a == m.acct {
				continue
			}
			if card, err := identity.ParseSignedCard(cards[a]); err == nil {
				for _, d := range card.Devices {
					for _, addr := range d.Addrs {
						if !strings.Contains(addr, "/p2p/") {
							addr += "/p2p/" + d.PeerID
						}
						seeds = append(seeds, addr)
					}
				}
			}
		}
	}
	peers := m.topicPeers(ctx, topic)
	if len(peers) == 0 {
		peers = m.historyPeers(topic, seeds)
	}
	req := &wirepb.HistoryRequest{Topic: topic, Limit: historyPageSize, SinceUnixMs: since.UnixMilli()}
	began := m.now()
	for i, p := range peers {
		if i >= 2 || ctx.Err() != nil {
			break
		}
		items, err := m.fetchHistory(ctx, p, req)
		if err != nil {
			m.log.Debug("historyFetchFailed", "peer", shortPeer(p.id), "err", err)
		} else if j := m.joinedTopic(topic); j != nil && len(items) < historyPageSize {
			j.checked.Store(began.UnixMilli())
		}
		if len(items) > 0 {
			m.receiveGroupMessages(ctx, gid, topic, p.id, items, false)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
