package messenger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Large groups (issue 18; docs/ARCHITECTURE.md, "Large groups"). Adding
// members one ADD op at a time made building a group of n quadratic at
// the admin: each op (which carries the new member's card, ~1.7 KB) went
// to every member, and each invitation carried every op with every card.
// Here:
//   - One ADD_MANY op adds up to wire.MaxAddBatch members, named by account
//     id (and the name on their card, for display) without their cards, so
//     the whole op set stays small: an invitation still carries every op,
//     and the new member still computes and checks the membership from the
//     signed DAG, as before.
//   - The members already in the group get the new ops once per command,
//     not once per member added.
//   - The new members' cards, which the others need to open a session with
//     them, are published once on the group's topic, in a group message
//     encrypted with the admin's sender key (one encryption per ≤ 64 KB of
//     cards): current members read it live, new members from the members'
//     history when they join (their invitation carries the admin's key
//     from before that message). It is kept and served like any message,
//     and never shown.
//   - A member who joins does not get the others' cards: each member that
//     reads the new card sends its sender key to the newcomer over a new
//     session, whose first message carries its own card; the newcomer,
//     seeing a member's key arrive on a session that member just opened,
//     answers with its own key (replyKey).

// ErrAlreadyMember is returned by GroupAdd when a contact named is a
// member already (nobody is added then).
var ErrAlreadyMember = errors.New("already a member of the group")

// groupCardsBody is the stored body of a card announcement: not valid
// UTF-8, so no text message has it; GroupMessages leaves such rows out.
const groupCardsBody = "\xffcards"

// cardsPerAnnouncement bounds the cards' bytes in one announcement, well
// within wire.MaxTopicMessage after padding.
const cardsPerAnnouncement = 64 << 10

// addedMember is one member of an ADD_MANY op.
type addedMember struct {
	account string
	name    string
}

// parseAdded checks an ADD_MANY op's members: canonical account ids, no
// member twice, names of valid UTF-8.
func parseAdded(in []*wirepb.AddedMember) ([]addedMember, error) {
	out := make([]addedMember, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, a := range in {
		key, err := identity.ParseAccountID(a.Account)
		if err != nil || identity.AccountIDFromKey(key) != a.Account {
			return nil, fmt.Errorf("%w: added member: not a canonical account id", errBadOp)
		}
		if seen[a.Account] {
			return nil, fmt.Errorf("%w: a member added twice", errBadOp)
		}
		if !utf8.ValidString(a.Name) {
			return nil, fmt.Errorf("%w: added member's name", errBadOp)
		}
		seen[a.Account] = true
		out = append(out, addedMember{account: a.Account, name: a.Name})
	}
	return out, nil
}

// applyAddMany applies an ADD_MANY op: an admin adds each member in order
// who is not one yet, while the group has room. It applies if it added
// anyone.
func (s *groupState) applyAddMany(o *groupOp) bool {
	if !s.isAdmin(o.author) {
		return false
	}
	n := 0
	for _, a := range o.added {
		if s.isMember(a.account) || len(s.members) >= wire.MaxGroupMembers {
			continue
		}
		s.members[a.account] = &groupMember{name: a.name}
		delete(s.removed, a.account)
		n++
	}
	return n > 0
}

// addedName is the name an ADD_MANY op records for a contact: the one on
// their own card (never our name for them), cut to wire.MaxAddedName.
func addedName(card []byte) string {
	c, err := identity.ParseHistoricCard(card)
	if err != nil {
		return ""
	}
	n := c.Name
	for len(n) > wire.MaxAddedName {
		_, size := utf8.DecodeLastRuneInString(n)
		n = n[:len(n)-size]
	}
	return n
}

// GroupAdd invites contacts into a group (admins only) with as few
// ADD_MANY ops as their number needs: each new member gets the group's
// secret, every op and our sender key over our 1:1 session; every member
// gets the new ops once; the new members' cards are published once on the
// group's topic.
func (m *Messenger) GroupAdd(ctx context.Context, ref string, contactRefs ...string) (GroupInfo, error) {
	if len(contactRefs) == 0 {
		return GroupInfo{}, fmt.Errorf("%w: name at least one contact to add", ErrUnknownContact)
	}
	var g *store.Group
	var st *groupState
	var pubs [][]byte
	rx := newBatch()
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		rx, pubs = newBatch(), nil
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
		if !old.isAdmin(m.acct) {
			return ErrNotAdmin
		}
		var adds []*store.Contact
		seen := map[string]bool{}
		for _, r := range contactRefs {
			c, err := resolve(tx, r)
			if err != nil {
				return err
			}
			if old.isMember(c.AccountID) {
				return fmt.Errorf("%w: %s", ErrAlreadyMember, c.Name)
			}
			if !seen[c.AccountID] {
				seen[c.AccountID] = true
				adds = append(adds, c)
			}
		}
		if len(old.members)+len(adds) > wire.MaxGroupMembers {
			return ErrGroupFull
		}
		st = old
		var raws, cards [][]byte
		for i := 0; i < len(adds); i += wire.MaxAddBatch {
			op := &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD_MANY, GroupId: g.ID, AtUnixMs: m.now().UnixMilli()}
			for _, c := range adds[i:min(i+wire.MaxAddBatch, len(adds))] {
				op.Added = append(op.Added, &wirepb.AddedMember{Account: c.AccountID, Name: addedName(c.Card)})
				cards = append(cards, c.Card)
			}
			st.nextOp(op)
			raw := m.signOp(op)
			h := sha256.Sum256(raw)
			if _, err := tx.PutGroupOp(g.ID, h[:], raw); err != nil {
				return err
			}
			raws = append(raws, raw)
			if st, err = m.loadState(tx, g.ID); err != nil {
				return err
			}
		}
		for _, c := range adds {
			if !st.isMember(c.AccountID) {
				return fmt.Errorf("%s was not added (a concurrent change?)", c.Name)
			}
		}
		// The members already in: the new ops, once; and our own other
		// devices.
		for _, a := range old.memberIDs() {
			if a == m.acct {
				continue
			}
			if err := m.queueOps(tx, rx, st, old, a, &wirepb.GroupControl{GroupId: g.ID}, raws); err != nil {
				return err
			}
		}
		if err := m.queueOwn(tx, g, old, &wirepb.GroupControl{GroupId: g.ID, Ops: raws}); err != nil {
			return err
		}
		// The new members: secret, every op, our sender key.
		sender, err := senderkey.UnmarshalSender(g.Sender)
		if err != nil || membershipEpoch(sender.Epoch()) != st.epoch {
			// Not the key of this epoch (cannot happen for an add, which
			// starts none): the general path makes and sends a new one.
			if err := m.afterStateChange(tx, rx, g, old, st); err != nil {
				return err
			}
			if sender, err = senderkey.UnmarshalSender(g.Sender); err != nil {
				return err
			}
		}
		all, err := tx.GroupOps(g.ID)
		if err != nil {
			return err
		}
		dist := sender.Distribution().Marshal()
		for _, c := range adds {
			gc := &wirepb.GroupControl{GroupId: g.ID, Secret: g.Secret, Name: st.name}
			if err := m.queueOps(tx, rx, st, old, c.AccountID, gc, all, dist); err != nil {
				return err
			}
		}
		// The cards, once, after the key the invitations carry: the new
		// members read them too.
		if pubs, err = m.announceCards(tx, g, cards); err != nil {
			return err
		}
		rx.events = append(rx.events, Event{Type: EventGroup, Group: hex.EncodeToString(g.ID)})
		return rx.flush(tx)
	})
	if err != nil {
		return GroupInfo{}, err
	}
	m.groups.drop(g.ID)
	for _, f := range rx.after {
		f()
	}
	topic := groupTopic(g.Secret)
	for _, p := range pubs {
		m.publishSoon(topic, p)
	}
	m.emit(Event{Type: EventGroup, Group: hex.EncodeToString(g.ID)})
	m.wake()
	return m.groupInfo(ctx, g, st), nil
}

// queueOps sends ops to a member in GroupControls of at most
// controlOpsBytes of ops, gc's fields in each; key, if set, goes with the
// last.
func (m *Messenger) queueOps(tx *store.Tx, rx *batch, st, old *groupState, acct string, gc *wirepb.GroupControl, ops [][]byte, key ...[]byte) error {
	var chunk [][]byte
	size := 0
	flush := func(last bool) error {
		c := &wirepb.GroupControl{GroupId: gc.GroupId, Secret: gc.Secret, Name: gc.Name, Ops: chunk}
		if last && len(key) > 0 {
			c.SenderKey = key[0]
		}
		chunk, size = nil, 0
		return m.queueGroupControl(tx, rx, st, old, acct, c)
	}
	for _, r := range ops {
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

// announceCards seals the new members' cards into group messages with our
// sender key (one per cardsPerAnnouncement bytes) and stores them, to be
// served as history; it returns them for publishing after the commit.
func (m *Messenger) announceCards(tx *store.Tx, g *store.Group, cards [][]byte) ([][]byte, error) {
	if len(cards) == 0 {
		return nil, nil
	}
	cur, err := tx.Group(g.ID)
	if err != nil {
		return nil, err
	}
	sender, err := senderkey.UnmarshalSender(cur.Sender)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	var chunk [][]byte
	size := 0
	flush := func() error {
		id := make([]byte, wire.MessageIDSize)
		if _, err := io.ReadFull(m.rand, id); err != nil {
			return err
		}
		now, err := m.sent.next(tx, m.acct, m.now())
		if err != nil {
			return err
		}
		pt := wire.Pad(wire.Marshal(&wirepb.GroupText{Version: wire.Version, MessageId: id, SentAtUnixMs: now.UnixMilli(), Cards: chunk}))
		msg, err := sender.Encrypt(pt)
		if err != nil {
			return err
		}
		m.encStats.senderKey.Add(1)
		raw := wire.Marshal(&wirepb.GroupEnvelope{Version: wire.Version, Sender: m.acct, Message: msg, Device: m.selfTag()})
		gm := &store.GroupMessage{GroupID: g.ID, ID: groupMsgID(raw), Sender: m.acct, Body: groupCardsBody, SentAt: now, At: now, Raw: raw}
		if _, err := tx.PutGroupMessage(gm); err != nil {
			return err
		}
		out = append(out, raw)
		chunk, size = nil, 0
		return nil
	}
	for _, c := range cards {
		if (size+len(c) > cardsPerAnnouncement || len(chunk) == wire.MaxAddBatch) && len(chunk) > 0 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		chunk = append(chunk, c)
		size += len(c)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	cur.Sender = sender.Marshal()
	g.Sender = cur.Sender
	return out, tx.UpdateGroup(cur)
}

// receivedCards handles the cards of an announcement by sender, read in
// openGroupMessage's transaction. Only an admin's announcement counts
// (admins add members); a card is its member's own (self-signed). A card
// of someone we cannot reach yet (not a contact) makes them one — the
// announcement may overtake the ops that add them, which then find the
// contact — and the sender key we owe them, if any, goes to them on the
// new session (the batch here is our own: openGroupMessage has none, so
// it touches only sessions made here).
func (m *Messenger) receivedCards(tx *store.Tx, g *store.Group, sender string, cards [][]byte) error {
	if g.Gone || len(g.Sender) == 0 {
		return nil
	}
	st, err := m.loadState(tx, g.ID)
	if err != nil {
		return err
	}
	if !st.isAdmin(sender) || !st.isMember(m.acct) {
		return nil
	}
	rx := newBatch()
	for _, b := range cards {
		card, err := identity.ParseSignedCard(b)
		if err != nil {
			continue
		}
		acct := card.AccountID()
		if acct == m.acct {
			continue
		}
		if _, err := tx.ContactByAccount(acct); err == nil {
			// Reachable already: whatever we owed them went when they
			// became reachable (settleOwed on their first control). Not
			// sent from here: this transaction's receive batch may hold
			// their session in a newer state than the store's.
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := m.contactFromCard(tx, card, b); err != nil {
			return err
		}
		if err := m.settleOwed(tx, rx, g, acct); err != nil { // a new session: in no other batch
			return err
		}
	}
	// The outbox poll sends these (within a second): no wake from inside
	// the reading transaction.
	return rx.flush(tx)
}

// oweKey records, for a member we cannot reach (no card: added by
// ADD_MANY), the sender key a GroupControl was to carry to them: the
// distribution as it stands now, so that they can read what we send from
// now on once it reaches them (settleOwed). Other controls are dropped,
// as for any member we cannot reach.
func (m *Messenger) oweKey(tx *store.Tx, acct string, gc *wirepb.GroupControl) error {
	if len(gc.SenderKey) == 0 {
		m.log.Debug("groupMemberNoCard", "member", identity.Short(acct))
		return nil
	}
	return tx.PutGroupOwedKey(gc.GroupId, acct, gc.SenderKey)
}

// settleOwed sends member acct the sender key we owe them, if any, now
// that they are reachable (their card came, or a message of theirs
// opened a session), if it is still of the current epoch.
func (m *Messenger) settleOwed(tx *store.Tx, rx *batch, g *store.Group, acct string) error {
	if g == nil || len(g.Secret) == 0 {
		return nil
	}
	dist, err := tx.GroupOwedKey(g.ID, acct)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := tx.ContactByAccount(acct); errors.Is(err, store.ErrNotFound) {
		return nil // not reachable yet
	} else if err != nil {
		return err
	}
	if err := tx.DeleteGroupOwedKey(g.ID, acct); err != nil {
		return err
	}
	st, err := m.loadState(tx, g.ID)
	if err != nil {
		return err
	}
	d, err := senderkey.ParseDistribution(dist)
	if err != nil || g.Gone || !st.isMember(m.acct) || !st.isMember(acct) || membershipEpoch(d.Epoch) != st.epoch {
		return nil // out of date: a newer key went, or goes, to every member
	}
	return m.queueGroupControl(tx, rx, st, nil, acct, &wirepb.GroupControl{GroupId: g.ID, SenderKey: dist})
}

// memberCard is a member's card: the one we hold as their contact's (the
// newest: it lists a device linked since the member was added), else the
// one in the op that added them or created the group (an ADD_MANY op
// names no card).
func memberCard(tx *store.Tx, acct string, mb *groupMember) []byte {
	if c, err := tx.ContactByAccount(acct); err == nil && len(c.Card) > 0 {
		return c.Card
	}
	return mb.card
}

// memberCards returns every member's card we have (memberCard), by account.
func (m *Messenger) memberCards(ctx context.Context, st *groupState) map[string][]byte {
	out := make(map[string][]byte, len(st.members))
	_ = m.st.View(ctx, func(tx *store.Tx) error {
		for a, mb := range st.members {
			if cb := memberCard(tx, a, mb); len(cb) > 0 {
				out[a] = cb
			}
		}
		return nil
	})
	return out
}

// groupEncStats counts the encryptions groups cost (for the benchmarks):
// sender-key encryptions (a message, a card announcement) and 1:1
// encryptions of group controls (ops, invitations, sender keys).
type groupEncStats struct {
	senderKey, pairwise, pairwiseBytes atomic.Uint64
}

// GroupEncryptions is a snapshot of the encryptions groups cost so far.
type GroupEncryptions struct {
	SenderKey     uint64 // sender-key encryptions: group messages, card announcements
	Pairwise      uint64 // 1:1 encryptions of group controls (ops, invitations, sender keys)
	PairwiseBytes uint64 // their sealed bytes
}

// GroupEncryptions returns the encryptions groups cost since start.
func (m *Messenger) GroupEncryptions() GroupEncryptions {
	return GroupEncryptions{SenderKey: m.encStats.senderKey.Load(), Pairwise: m.encStats.pairwise.Load(), PairwiseBytes: m.encStats.pairwiseBytes.Load()}
}
