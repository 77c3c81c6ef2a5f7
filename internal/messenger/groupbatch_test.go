package messenger

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// logTune gives a node a debug logger on stderr when SAMIZDAT_TEST_LOG is
// set (to follow a failing group test).
func logTune(name string) func(*Config) {
	return func(c *Config) {
		if os.Getenv("SAMIZDAT_TEST_LOG") != "" {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
		}
	}
}

// TestGroupAddMany: one command adds three contacts (one ADD_MANY op);
// none of them knew the others; everyone reads everyone — the new
// members reach each other through the announced cards and the answered
// keys, not through cards in their invitations.
func TestGroupAddMany(t *testing.T) {
	ctx := context.Background()
	a := newNodeTuned(t, "alice", logTune("alice"))
	b, c, d := newNodeTuned(t, "bob", logTune("bob")), newNodeTuned(t, "carol", logTune("carol")), newNodeTuned(t, "dave", logTune("dave"))
	for _, n := range []*tnode{b, c, d} {
		addContact(t, a, n)
	}
	g, err := a.m.CreateGroup(ctx, "Many")
	if err != nil {
		t.Fatal(err)
	}
	before := a.m.GroupEncryptions()
	if g, err = a.m.GroupAdd(ctx, g.ID, "bob", "carol", "dave"); err != nil {
		t.Fatal(err)
	}
	if len(g.Members) != 4 {
		t.Fatalf("after the add: %d members", len(g.Members))
	}
	after := a.m.GroupEncryptions()
	// An invitation each (one control: the ops are small), one
	// announcement of the three cards.
	if got := after.Pairwise - before.Pairwise; got != 3 {
		t.Errorf("1:1 encryptions for adding 3: %d, want 3", got)
	}
	if got := after.SenderKey - before.SenderKey; got != 1 {
		t.Errorf("sender-key encryptions for adding 3: %d, want 1 (the cards)", got)
	}
	nodes := []*tnode{a, b, c, d}
	for _, n := range nodes[1:] {
		eventually(t, 20*time.Second, n.name+" joins", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 4 && !gi.Gone
		})
	}
	for _, n := range nodes {
		s0 := n.m.GroupEncryptions()
		if _, err := n.m.GroupSend(ctx, g.ID, "hello from "+n.name); err != nil {
			t.Fatal(err)
		}
		// (1:1 encryptions may happen meanwhile: keys owed to members
		// going out as their cards arrive; GroupSend makes none.)
		if s1 := n.m.GroupEncryptions(); s1.SenderKey-s0.SenderKey != 1 {
			t.Errorf("%s: a group message cost %d sender-key encryptions, want 1", n.name, s1.SenderKey-s0.SenderKey)
		}
	}
	for _, n := range nodes {
		for _, from := range nodes {
			eventually(t, 30*time.Second, n.name+" reads "+from.name, func() bool { return groupHas(t, n, g.ID, "hello from "+from.name) })
		}
		for _, txt := range groupTexts(t, n, g.ID) {
			if txt == "" {
				t.Errorf("%s shows an empty message (a card announcement?)", n.name)
			}
		}
	}
}

// TestGroupOpsAddMany: ADD_MANY ops next to legacy ADD ops, in the DAG:
// an admin's adds everyone listed who is not a member yet; a non-admin's
// applies nowhere; a removal wins over a concurrent ADD_MANY by the
// removed admin; malformed lists are refused at parse; every order gives
// the same membership.
func TestGroupOpsAddMany(t *testing.T) {
	admin, bob, carol, dave, erin := newOpUser(t, "admin"), newOpUser(t, "bob"), newOpUser(t, "carol"), newOpUser(t, "dave"), newOpUser(t, "erin")
	salt := hex.EncodeToString([]byte("0123456789abcdef"))
	gid := groupID(admin.id.Public(), []byte(salt))
	added := func(us ...opUser) []*wirepb.AddedMember {
		var out []*wirepb.AddedMember
		for _, u := range us {
			out = append(out, &wirepb.AddedMember{Account: u.acct, Name: "n"})
		}
		return out
	}
	create := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_CREATE, Name: "g", Member: salt, MemberCard: admin.card})
	addBob := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: bob.card}, create) // legacy
	// bob again (already a member: skipped), carol new.
	many := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD_MANY, Added: added(bob, carol)}, addBob)
	carolMany := carol.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD_MANY, Added: added(dave)}, many) // not an admin
	bobAdmin := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADMIN, Member: bob.acct}, many)
	// Concurrent: the admin removes bob; bob adds erin.
	rmBob := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: bob.acct}, bobAdmin)
	bobMany := bob.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD_MANY, Added: added(erin)}, bobAdmin)
	all := []*groupOp{create, addBob, many, carolMany, bobAdmin, rmBob, bobMany}
	st := computeState(all)
	if got := st.memberIDs(); len(got) != 2 || !st.isMember(admin.acct) || !st.isMember(carol.acct) {
		t.Fatalf("members %v; want admin and carol", got)
	}
	if st.isMember(dave.acct) || st.isMember(erin.acct) || st.epoch != 1 {
		t.Fatalf("a non-admin's or a removed admin's add applied (epoch %d)", st.epoch)
	}
	if mb := st.members[carol.acct]; mb.name != "n" || mb.card != nil {
		t.Fatalf("carol from ADD_MANY: %+v", mb)
	}
	for range 30 {
		sh := append([]*groupOp(nil), all...)
		mrand.Shuffle(len(sh), func(i, j int) { sh[i], sh[j] = sh[j], sh[i] })
		if got := computeState(sh); fmt.Sprint(got.memberIDs(), got.epoch) != fmt.Sprint(st.memberIDs(), st.epoch) {
			t.Fatal("order changed the result")
		}
	}
	// Refused at parse: a member twice, an id not in canonical form.
	for name, a := range map[string][]*wirepb.AddedMember{
		"twice":         added(dave, dave),
		"not canonical": {{Account: strings.ToUpper(dave.acct)}},
		"not an id":     {{Account: "dave"}},
	} {
		op := &wirepb.GroupOp{Version: wire.Version, GroupId: gid, Author: admin.id.Public().Marshal(), Kind: wirepb.GroupOp_KIND_ADD_MANY, Added: a, Depth: 2, Parents: [][]byte{create.hash[:]}}
		b := wire.Marshal(op)
		raw := wire.Marshal(&wirepb.SignedGroupOp{Op: b, Signature: admin.id.Sign(opDomain, b)})
		if _, err := parseOp(raw, gid); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
