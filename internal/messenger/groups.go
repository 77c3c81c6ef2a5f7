package messenger

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Private groups (DESIGN §5, §11): every member's device owns a sender key
// (internal/crypto/senderkey; one per device, groupdevices.go) and sends it
// to every device of every other member over the
// pairwise ratchet sessions, as a GroupControl payload through the durable
// outbox (so a member who is offline gets it from the outbox retries or
// the mailboxes). A group message is encrypted once with the sender's key
// and published once on the group's gossipsub topic, whose name is an HMAC
// of the group secret; members keep the encrypted messages and serve them
// on /samizdat/history/1, so a member that was down catches up from any
// other. Membership is a signed op DAG (groupops.go). Removing a member
// (or a member leaving) starts a new epoch: every remaining member makes a
// new sender key and sends it to the remaining members only, so the removed
// member cannot read anything sent after.

// groupItemPrefix marks outbox items that carry a GroupControl payload.
const groupItemPrefix = "grp-"

// Limits of groups.
const (
	controlOpsBytes  = 150 << 10 // ops per GroupControl (an invite is split)
	groupHistoryWait = 10 * time.Minute
)

// Errors about groups.
var (
	// ErrUnknownGroup is returned when a reference matches no group.
	ErrUnknownGroup = errors.New("no such group (see samizdat group list)")
	// ErrNotAdmin is returned for membership changes by a non-admin.
	ErrNotAdmin = errors.New("only a group admin can do this")
	// ErrNotMember is returned when acting on a group we left or were
	// removed from, or on someone who is not a member.
	ErrNotMember = errors.New("not a member of the group")
	// ErrGroupFull is returned by GroupAdd for a group of MaxGroupMembers.
	ErrGroupFull = errors.New("the group is full")
)

// GroupInfo is a group as shown to users and the API.
type GroupInfo struct {
	ID      string        `json:"id"` // hex
	Name    string        `json:"name"`
	Members []GroupMember `json:"members"`
	Admin   bool          `json:"admin"` // we are an admin
	Epoch   uint32        `json:"epoch"`
	Gone    bool          `json:"gone"`  // we left or were removed
	Peers   int           `json:"peers"` // members' nodes on the group's topic now
}

// GroupMember is one member of a group.
type GroupMember struct {
	AccountID string `json:"accountId"`
	Name      string `json:"name"`
	Admin     bool   `json:"admin"`
}

// GroupMessage is one readable group message.
type GroupMessage struct {
	Seq        int64     `json:"seq"`
	ID         string    `json:"id"`
	Sender     string    `json:"sender"` // account id
	SenderName string    `json:"senderName"`
	Outgoing   bool      `json:"outgoing"`
	Text       string    `json:"text"`
	SentAt     time.Time `json:"sentAt"`
	Ord        float64   `json:"ord"` // display key (store.GroupMessage.Ord)
	At         time.Time `json:"at"`
}

// groupCache keeps computed memberships, keyed by group id. Entries are
// dropped whenever ops are written; a state computed from a read that
// started before a drop is not cached (the generation changed).
type groupCache struct {
	mu  sync.Mutex
	m   map[string]*groupState
	gen uint64
}

func (gc *groupCache) get(gid []byte) (*groupState, uint64) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.m[string(gid)], gc.gen
}

// set caches s, read at generation gen, unless something was dropped since.
func (gc *groupCache) set(gid []byte, s *groupState, gen uint64) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gen != gc.gen {
		return
	}
	if gc.m == nil {
		gc.m = map[string]*groupState{}
	}
	gc.m[string(gid)] = s
}

func (gc *groupCache) drop(gid []byte) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	gc.gen++
	delete(gc.m, string(gid))
}

func groupTopic(secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("samizdat/group/v1/topic"))
	return "/samizdat/grp/1/" + hex.EncodeToString(mac.Sum(nil))
}

// loadState computes a group's membership from its stored ops.
func (m *Messenger) loadState(tx *store.Tx, gid []byte) (*groupState, error) {
	raws, err := tx.GroupOps(gid)
	if err != nil {
		return nil, err
	}
	ops := make([]*groupOp, 0, len(raws))
	for _, r := range raws {
		if o, err := m.ops.parse(r, gid); err == nil {
			ops = append(ops, o)
		}
	}
	return computeState(ops), nil
}

// cachedState returns a group's committed membership.
func (m *Messenger) cachedState(ctx context.Context, gid []byte) (*groupState, error) {
	s, gen := m.groups.get(gid)
	if s != nil {
		return s, nil
	}
	err := m.st.View(ctx, func(tx *store.Tx) (err error) { s, err = m.loadState(tx, gid); return err })
	if err != nil {
		return nil, err
	}
	m.groups.set(gid, s, gen)
	return s, nil
}

// resolveGroup finds a group by id (hex, or a prefix of at least 6
// digits) or by name.
func resolveGroup(tx *store.Tx, ref string) (*store.Group, error) {
	ref = strings.TrimSpace(ref)
	gs, err := tx.Groups()
	if err != nil {
		return nil, err
	}
	var found *store.Group
	for i, g := range gs {
		h := hex.EncodeToString(g.ID)
		if (len(ref) >= 6 && strings.HasPrefix(h, strings.ToLower(ref))) || strings.EqualFold(g.Name, ref) {
			if found != nil && !bytes.Equal(found.ID, g.ID) {
				return nil, fmt.Errorf("%q names several groups: use the id", ref)
			}
			found = &gs[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownGroup, ref)
	}
	return found, nil
}

func checkGroupName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > wire.MaxGroupName || !utf8.ValidString(name) {
		return "", fmt.Errorf("a group needs a name of 1 to %d bytes", wire.MaxGroupName)
	}
	return name, nil
}

// CreateGroup creates a group with us as its only member and admin.
func (m *Messenger) CreateGroup(ctx context.Context, name string) (GroupInfo, error) {
	name, err := checkGroupName(name)
	if err != nil {
		return GroupInfo{}, err
	}
	card, err := m.card(ctx)
	if err != nil {
		return GroupInfo{}, err
	}
	rnd := make([]byte, 16+32)
	if _, err := io.ReadFull(m.rand, rnd); err != nil {
		return GroupInfo{}, err
	}
	salt := hex.EncodeToString(rnd[:16])
	gid := groupID(m.id.Public(), []byte(salt))
	sender, err := senderkey.New(m.rand, 0)
	if err != nil {
		return GroupInfo{}, err
	}
	g := &store.Group{ID: gid, Secret: rnd[16:], Name: name, Sender: sender.Marshal(), Created: m.now()}
	op := m.signOp(&wirepb.GroupOp{GroupId: gid, Kind: wirepb.GroupOp_KIND_CREATE, Name: name, Member: salt, MemberCard: card, Depth: 1, AtUnixMs: m.now().UnixMilli()})
	var st *groupState
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.AddGroup(g); err != nil {
			return err
		}
		h := sha256.Sum256(op)
		if _, err := tx.PutGroupOp(gid, h[:], op); err != nil {
			return err
		}
		if err := m.syncGroup(tx, gid); err != nil { // devsync.go: on our other devices too
			return err
		}
		if st, err = m.loadState(tx, gid); err != nil {
			return err
		}
		// Our other devices read what this one posts (groupdevices.go):
		// with no other member, no membership change sends the key later.
		return m.queueOwn(tx, g, st, &wirepb.GroupControl{GroupId: gid, SenderKey: sender.Distribution().Marshal(), Device: m.selfTag()})
	})
	if err != nil {
		return GroupInfo{}, err
	}
	m.groups.drop(gid)
	m.joinGroup(g)
	return m.groupInfo(ctx, g, st), nil
}

// groupInfo builds the API view of a group.
func (m *Messenger) groupInfo(ctx context.Context, g *store.Group, st *groupState) GroupInfo {
	gi := GroupInfo{ID: hex.EncodeToString(g.ID), Name: st.name, Admin: st.isAdmin(m.acct), Epoch: st.epoch, Gone: g.Gone || !st.isMember(m.acct), Members: []GroupMember{}}
	if gi.Name == "" {
		gi.Name = g.Name
	}
	if j := m.joinedTopic(groupTopic(g.Secret)); j != nil && j.topic != nil {
		gi.Peers = len(j.topic.Peers())
	}
	names := map[string]string{}
	_ = m.st.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		for _, c := range cs {
			names[c.AccountID] = c.Name
		}
		return err
	})
	for _, a := range st.memberIDs() {
		mb := st.members[a]
		name := names[a]
		if a == m.acct {
			name = m.name
		} else if name == "" {
			name = mb.name
		}
		gi.Members = append(gi.Members, GroupMember{AccountID: a, Name: name, Admin: mb.admin})
	}
	return gi
}

// Groups lists our groups.
func (m *Messenger) Groups(ctx context.Context) ([]GroupInfo, error) {
	var gs []store.Group
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { gs, err = tx.Groups(); return err }); err != nil {
		return nil, err
	}
	out := []GroupInfo{}
	for _, g := range gs {
		st, err := m.cachedState(ctx, g.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, m.groupInfo(ctx, &g, st))
	}
	return out, nil
}

// Group returns one group by id or name.
func (m *Messenger) Group(ctx context.Context, ref string) (GroupInfo, error) {
	var g *store.Group
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { g, err = resolveGroup(tx, ref); return err }); err != nil {
		return GroupInfo{}, err
	}
	st, err := m.cachedState(ctx, g.ID)
	if err != nil {
		return GroupInfo{}, err
	}
	return m.groupInfo(ctx, g, st), nil
}

// groupChange is one membership change made by us: it is signed, stored,
// applied and sent to the members (and to whoever else needs it) in one
// transaction.
type groupChange struct {
	op     *wirepb.GroupOp
	invite string // ADD: the new member, who gets the whole group
	notify string // REMOVE: the removed member, told so
}

// changeGroup applies a membership change of ours.
func (m *Messenger) changeGroup(ctx context.Context, ref string, build func(tx *store.Tx, g *store.Group, st *groupState) (*groupChange, error)) (GroupInfo, error) {
	var g *store.Group
	var st *groupState
	rx := newBatch()
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		rx = newBatch()
		var err error
		if g, err = resolveGroup(tx, ref); err != nil {
			return err
		}
		old, err := m.loadState(tx, g.ID)
		if err != nil {
			return err
		}
		if g.Gone || !old.isMember(m.acct) {
			return ErrNotMember
		}
		ch, err := build(tx, g, old)
		if err != nil {
			return err
		}
		ch.op.GroupId, ch.op.AtUnixMs = g.ID, m.now().UnixMilli()
		old.nextOp(ch.op)
		raw := m.signOp(ch.op)
		h := sha256.Sum256(raw)
		if _, err := tx.PutGroupOp(g.ID, h[:], raw); err != nil {
			return err
		}
		if st, err = m.loadState(tx, g.ID); err != nil {
			return err
		}
		// Everyone who was or is a member hears of the op.
		tell := map[string]bool{}
		for _, a := range old.memberIDs() {
			tell[a] = true
		}
		for _, a := range st.memberIDs() {
			tell[a] = true
		}
		delete(tell, m.acct)
		delete(tell, ch.invite)
		for a := range tell {
			if err := m.queueGroupControl(tx, rx, st, old, a, &wirepb.GroupControl{GroupId: g.ID, Ops: [][]byte{raw}}); err != nil {
				return err
			}
		}
		// So do our own other devices, which hold sender keys of their own.
		if err := m.queueOwn(tx, g, old, &wirepb.GroupControl{GroupId: g.ID, Ops: [][]byte{raw}}); err != nil {
			return err
		}
		if ch.invite != "" {
			if err := m.inviteMember(tx, rx, g, st, ch.invite); err != nil {
				return err
			}
		}
		if err := m.afterStateChange(tx, rx, g, old, st); err != nil {
			return err
		}
		return rx.flush(tx)
	})
	if err != nil {
		return GroupInfo{}, err
	}
	m.groups.drop(g.ID)
	for _, f := range rx.after {
		f()
	}
	m.emit(Event{Type: EventGroup, Group: hex.EncodeToString(g.ID)})
	m.wake()
	return m.groupInfo(ctx, g, st), nil
}

// memberRef resolves a contact name or a member's account id.
func memberRef(tx *store.Tx, st *groupState, ref string) (string, error) {
	if c, err := resolve(tx, ref); err == nil {
		return c.AccountID, nil
	}
	ref = strings.ToLower(strings.TrimSpace(ref))
	if st.isMember(ref) {
		return ref, nil
	}
	return "", fmt.Errorf("%w: %q", ErrNotMember, ref)
}

// GroupRemove removes a member (admins only) and starts a new epoch.
func (m *Messenger) GroupRemove(ctx context.Context, ref, memberRefStr string) (GroupInfo, error) {
	return m.changeGroup(ctx, ref, func(tx *store.Tx, g *store.Group, st *groupState) (*groupChange, error) {
		if !st.isAdmin(m.acct) {
			return nil, ErrNotAdmin
		}
		a, err := memberRef(tx, st, memberRefStr)
		if err != nil {
			return nil, err
		}
		if !st.isMember(a) {
			return nil, fmt.Errorf("%w: %s", ErrNotMember, identity.Short(a))
		}
		if a == m.acct {
			return nil, errors.New("to remove yourself, leave the group")
		}
		if !st.canRemove(m.acct, a) {
			return nil, fmt.Errorf("%w: %s became an admin before you", ErrNotAdmin, identity.Short(a))
		}
		return &groupChange{op: &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: a}, notify: a}, nil
	})
}

// GroupLeave leaves a group; the others start a new epoch.
func (m *Messenger) GroupLeave(ctx context.Context, ref string) (GroupInfo, error) {
	gi, err := m.changeGroup(ctx, ref, func(*store.Tx, *store.Group, *groupState) (*groupChange, error) {
		return &groupChange{op: &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_LEAVE}}, nil
	})
	if gid, herr := hex.DecodeString(gi.ID); err == nil && herr == nil {
		err = m.SyncGroup(ctx, gid) // devsync.go: left on our other devices too
	}
	return gi, err
}

// GroupRename renames a group (admins only).
func (m *Messenger) GroupRename(ctx context.Context, ref, name string) (GroupInfo, error) {
	name, err := checkGroupName(name)
	if err != nil {
		return GroupInfo{}, err
	}
	return m.changeGroup(ctx, ref, func(_ *store.Tx, _ *store.Group, st *groupState) (*groupChange, error) {
		if !st.isAdmin(m.acct) {
			return nil, ErrNotAdmin
		}
		return &groupChange{op: &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_RENAME, Name: name}}, nil
	})
}

// inviteMember sends a new member the group: secret, name, every op
// (split so each control message stays small) and our sender key.
func (m *Messenger) inviteMember(tx *store.Tx, rx *batch, g *store.Group, st *groupState, acct string) error {
	raws, err := tx.GroupOps(g.ID)
	if err != nil {
		return err
	}
	sender, _, err := m.ownSender(tx, rx, g, st)
	if err != nil {
		return err
	}
	var chunk [][]byte
	size := 0
	flush := func(last bool) error {
		gc := &wirepb.GroupControl{GroupId: g.ID, Secret: g.Secret, Name: st.name, Ops: chunk}
		if last {
			gc.SenderKey = sender.Distribution().Marshal()
		}
		chunk, size = nil, 0
		return m.queueGroupControl(tx, rx, st, nil, acct, gc)
	}
	for _, r := range raws {
		if size+len(r) > controlOpsBytes && len(chunk) > 0 {
			if err := flush(false); err != nil {
				return err
			}
		}
		chunk = append(chunk, r)
		size += len(r)
	}
	return flush(true)
}

// queueGroupControl encrypts a GroupControl to a member over our 1:1
// session with them and queues it in the outbox. A member who is not a
// contact yet becomes one, from the card the group's ops carry.
func (m *Messenger) queueGroupControl(tx *store.Tx, rx *batch, st, old *groupState, acct string, gc *wirepb.GroupControl) error {
	if len(gc.SenderKey) > 0 && len(gc.Device) == 0 {
		gc.Device = m.selfTag() // the key is this device's (groupdevices.go)
	}
	c, err := tx.ContactByAccount(acct)
	if errors.Is(err, store.ErrNotFound) {
		mb := st.members[acct]
		if mb == nil && old != nil {
			mb = old.members[acct]
		}
		if mb == nil {
			return nil
		}
		if len(mb.card) == 0 {
			// Added by ADD_MANY: reached once their card is announced or
			// their first message comes (groupbatch.go).
			return m.oweKey(tx, acct, gc)
		}
		card, err := identity.ParseSignedCard(mb.card)
		if err != nil || card.AccountID() != acct {
			m.log.Info("groupMemberUnreachable", "member", identity.Short(acct))
			return nil
		}
		if c, err = m.contactFromCard(tx, card, mb.card); err != nil {
			return err
		}
		rx.events = append(rx.events, Event{Type: EventContact, ContactID: c.ID})
	} else if err != nil {
		return err
	}
	id := make([]byte, wire.MessageIDSize)
	if _, err := io.ReadFull(m.rand, id); err != nil {
		return err
	}
	rec, err := rx.record(tx, c.ID)
	if err != nil {
		return err
	}
	p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Group{Group: gc}}
	if len(rec.Sessions) == 0 || len(rec.Sessions[0].Initiation) > 0 {
		if p.SenderCard, err = m.cardInTx(tx); err != nil {
			return err
		}
		if err := attachInviteProof(tx, c.ID, p); err != nil {
			return err
		}
	}
	s, err := m.encrypt(rec, c, id, p)
	if err != nil {
		m.log.Info("groupControlNotSent", "member", identity.Short(acct), "err", err)
		return nil
	}
	rx.setRecord(c.ID, rec)
	m.encStats.pairwise.Add(1)
	m.encStats.pairwiseBytes.Add(uint64(len(s.bytes)))
	// The member's queue goes in order once its oldest item is due: queued
	// behind one waiting out its backoff, the control is not due before
	// it either (else every member's queue would be polled on every wake,
	// for every control queued: quadratic in a large group).
	next := m.now()
	if due, ok, err := tx.OutboxHeadDue(c.ID); err != nil {
		return err
	} else if ok && due.After(next) {
		next = due
	}
	if err := tx.Enqueue(store.OutboxItem{MessageID: groupItemPrefix + hex.EncodeToString(id), ContactID: c.ID, Payload: s.bytes, NextAttempt: next}); err != nil {
		return err
	}
	// Invitations, ops and sender keys go to every device of the member:
	// each device that joins makes a sender key of its own.
	return m.fanOut(tx, c, groupItemPrefix+hex.EncodeToString(id), p, next) // the member's other devices (fanout.go)
}

// cardInTx returns our card without opening a transaction (card reads the
// store only when running without a transport).
func (m *Messenger) cardInTx(tx *store.Tx) ([]byte, error) {
	m.cardMu.Lock()
	c := m.ownCard
	m.cardMu.Unlock()
	if c != nil {
		return c, nil
	}
	if m.tr == nil {
		return nil, errors.New("no contact card yet")
	}
	return m.card(context.Background())
}

// afterStateChange does what a new membership asks of us, inside the
// transaction that stored it: leave if we are out; make a new sender key
// for a new epoch (or on joining) and send it to every member; send our
// key to new members.
func (m *Messenger) afterStateChange(tx *store.Tx, rx *batch, g *store.Group, old, st *groupState) error {
	gidHex := hex.EncodeToString(g.ID)
	wasMember := old != nil && old.isMember(m.acct)
	if !st.isMember(m.acct) {
		if wasMember || !g.Gone {
			g.Gone = true
			if err := tx.UpdateGroup(g); err != nil {
				return err
			}
			topic := groupTopic(g.Secret)
			rx.after = append(rx.after, func() { m.leave(topic) })
			rx.events = append(rx.events, Event{Type: EventGroup, Group: gidHex}) // clients show that we are out
		}
		return nil
	}
	g.Gone = false
	if st.name != "" {
		g.Name = st.name
	}
	// Each device has a sender key of its own (groupdevices.go): a new
	// epoch, joining, or a device linked after the group was joined (no
	// key yet) makes a new one, for every device of every member and our
	// own other devices.
	sender, err := senderkey.UnmarshalSender(g.Sender)
	rotate := err != nil || !wasMember || membershipEpoch(sender.Epoch()) != st.epoch
	var to []string
	if rotate {
		if sender, err = senderkey.New(m.rand, keyEpoch(st.epoch, 0)); err != nil {
			return err
		}
		g.Sender = sender.Marshal()
		to = st.memberIDs()
		if err := tx.DeleteBlob(rekeyBlob(g.ID)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	} else {
		for _, a := range st.memberIDs() {
			if !old.isMember(a) {
				to = append(to, a)
			}
		}
	}
	if err := tx.UpdateGroup(g); err != nil {
		return err
	}
	if !wasMember {
		gc := *g
		rx.after = append(rx.after, func() { m.joinGroup(&gc) })
	}
	if err := m.distributeKey(tx, rx, g, st, old, to, sender); err != nil {
		return err
	}
	rx.events = append(rx.events, Event{Type: EventGroup, Group: gidHex})
	return nil
}

// GroupSend encrypts text once with our sender key, stores it and
// publishes it on the group's topic.
func (m *Messenger) GroupSend(ctx context.Context, ref, text string) (GroupMessage, error) {
	if strings.TrimSpace(text) == "" {
		return GroupMessage{}, ErrEmptyMessage
	}
	return m.groupSend(ctx, ref, text, nil)
}

// groupSend sends text and, if not nil, a file's manifest (groupfiles.go).
func (m *Messenger) groupSend(ctx context.Context, ref, text string, attachment []byte) (GroupMessage, error) {
	if err := m.revokedErr(); err != nil {
		return GroupMessage{}, err
	}
	if len(text) > wire.MaxTextSize {
		return GroupMessage{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLong, len(text), wire.MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return GroupMessage{}, errors.New("message is not valid UTF-8 text")
	}
	id := make([]byte, wire.MessageIDSize)
	if _, err := io.ReadFull(m.rand, id); err != nil {
		return GroupMessage{}, err
	}
	var now time.Time
	var raw []byte
	var topic string
	var joinAs store.Group
	var rx *batch
	var fresh bool
	gm := &store.GroupMessage{Sender: m.acct, Body: text}
	err := m.st.Update(ctx, func(tx *store.Tx) (err error) {
		rx = newBatch()
		if now, err = m.sent.next(tx, m.acct, m.now()); err != nil { // strictly increasing (order.go)
			return err
		}
		gm.SentAt, gm.At = now, now
		g, err := resolveGroup(tx, ref)
		if err != nil {
			return err
		}
		if g.Gone {
			return ErrNotMember
		}
		// A device linked after the group was joined makes its key now; a
		// device dropped since ours was made gets none of the next one.
		sender, made, err := m.ownSender(tx, rx, g, nil)
		if err != nil {
			return err
		}
		fresh = made
		pt := wire.Pad(wire.Marshal(&wirepb.GroupText{Version: wire.Version, MessageId: id, Body: text, SentAtUnixMs: now.UnixMilli(), Attachment: attachment}))
		msg, err := sender.Encrypt(pt)
		if err != nil {
			return err
		}
		m.encStats.senderKey.Add(1)
		g.Sender = sender.Marshal()
		if err := tx.UpdateGroup(g); err != nil {
			return err
		}
		raw = wire.Marshal(&wirepb.GroupEnvelope{Version: wire.Version, Sender: m.acct, Message: msg, Device: m.selfTag()})
		gm.GroupID, gm.ID, gm.Raw, topic = g.ID, groupMsgID(raw), raw, groupTopic(g.Secret)
		joinAs = *g
		if _, err = tx.PutGroupMessage(gm); err != nil {
			return err
		}
		return rx.flush(tx)
	})
	if err != nil {
		return GroupMessage{}, err
	}
	for _, f := range rx.after {
		f()
	}
	for _, e := range rx.events {
		m.emit(e)
	}
	if fresh {
		m.wake() // the new sender key goes to the members
	}
	// The invitation that made us a member is committed before its topic
	// is joined (after the commit): a message sent in between must not
	// be published to nothing.
	m.joinGroup(&joinAs)
	m.publishSoon(topic, raw)
	m.emit(Event{Type: EventGroup, Group: hex.EncodeToString(gm.GroupID), MessageID: gm.ID})
	return GroupMessage{Seq: gm.Seq, ID: gm.ID, Sender: m.acct, SenderName: m.name, Outgoing: true, Text: text, SentAt: now, At: now, Ord: gm.Ord}, nil
}

func groupMsgID(raw []byte) string {
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:16])
}

// GroupMessages returns a group's readable messages after afterSeq
// (limit <= 0: all), in display order (store.GroupMessage.Ord).
func (m *Messenger) GroupMessages(ctx context.Context, ref string, afterSeq int64, limit int) (GroupInfo, []GroupMessage, error) {
	var g *store.Group
	var ms []store.GroupMessage
	err := m.st.View(ctx, func(tx *store.Tx) (err error) {
		if g, err = resolveGroup(tx, ref); err != nil {
			return err
		}
		ms, err = tx.GroupMessages(g.ID, afterSeq, limit)
		return err
	})
	if err != nil {
		return GroupInfo{}, nil, err
	}
	st, err := m.cachedState(ctx, g.ID)
	if err != nil {
		return GroupInfo{}, nil, err
	}
	gi := m.groupInfo(ctx, g, st)
	names := map[string]string{}
	for _, mb := range gi.Members {
		names[mb.AccountID] = mb.Name
	}
	out := make([]GroupMessage, 0, len(ms))
	for _, gm := range ms {
		if gm.Body == groupCardsBody {
			continue // a card announcement (groupbatch.go)
		}
		name := names[gm.Sender]
		if name == "" {
			name = identity.Short(gm.Sender)
		}
		out = append(out, GroupMessage{Seq: gm.Seq, ID: gm.ID, Sender: gm.Sender, SenderName: name, Outgoing: gm.Sender == m.acct, Text: gm.Body, SentAt: gm.SentAt, At: gm.At, Ord: gm.Ord})
	}
	return gi, out, nil
}

// GroupJoin takes part in a group we were invited to (invitations arrive
// over a 1:1 session and are joined on arrival): it subscribes to the
// group's topic if needed and fetches what the members kept.
func (m *Messenger) GroupJoin(ctx context.Context, ref string) (GroupInfo, error) {
	var g *store.Group
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { g, err = resolveGroup(tx, ref); return err }); err != nil {
		return GroupInfo{}, err
	}
	if g.Gone {
		return GroupInfo{}, ErrNotMember
	}
	m.joinGroup(g)
	if j := m.joinedTopic(groupTopic(g.Secret)); j != nil {
		kickJoined(j)
	}
	return m.Group(ctx, ref)
}
