package messenger

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

type opUser struct {
	id   *keys.Identity
	acct string
	card []byte
}

func newOpUser(t *testing.T, name string) opUser {
	id, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card, err := identity.SignCard(id, &identity.Card{Identity: id.Public(), Name: name, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return opUser{id: id, acct: identity.AccountID(id.Public()), card: card}
}

func (u opUser) sign(t *testing.T, gid []byte, op *wirepb.GroupOp, parents ...*groupOp) *groupOp {
	op.Version, op.GroupId, op.Author = wire.Version, gid, u.id.Public().Marshal()
	var d uint64
	for _, p := range parents {
		op.Parents = append(op.Parents, p.hash[:])
		d = max(d, p.op.Depth)
	}
	op.Depth = d + 1
	b := wire.Marshal(op)
	raw := wire.Marshal(&wirepb.SignedGroupOp{Op: b, Signature: u.id.Sign(opDomain, b)})
	o, err := parseOp(raw, gid)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestGroupOpsConverge: the same ops in any order (and replayed) give the
// same membership; unauthorised ops are skipped; of two admins removing
// each other at once exactly one stays: the senior one.
func TestGroupOpsConverge(t *testing.T) {
	admin, bob, carol, dave := newOpUser(t, "admin"), newOpUser(t, "bob"), newOpUser(t, "carol"), newOpUser(t, "dave")
	salt := hex.EncodeToString([]byte("0123456789abcdef"))
	gid := groupID(admin.id.Public(), []byte(salt))
	create := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_CREATE, Name: "g", Member: salt, MemberCard: admin.card})
	addBob := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: bob.card}, create)
	addCarol := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: carol.card}, addBob)
	bobAdmin := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADMIN, Member: bob.acct}, addCarol)
	// Concurrent: admin removes bob, bob removes admin (same parents).
	rmBob := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: bob.acct}, bobAdmin)
	rmAdmin := bob.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: admin.acct}, bobAdmin)
	// Not allowed: carol (no admin) adds dave; rename by carol.
	carolAdds := carol.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: dave.card}, addCarol)
	carolRenames := carol.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_RENAME, Name: "mine"}, addCarol)
	// An op whose parent is missing waits.
	orphan := admin.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_RENAME, Name: "later"}, &groupOp{hash: sha256.Sum256([]byte("x")), op: &wirepb.GroupOp{Depth: 9}})
	all := []*groupOp{create, addBob, addCarol, bobAdmin, rmBob, rmAdmin, carolAdds, carolRenames, orphan}
	want := computeState(all)
	if len(want.members) != 2 || want.epoch != 1 || want.name != "g" || want.isMember(dave.acct) {
		t.Fatalf("state: %d members, epoch %d, name %q", len(want.members), want.epoch, want.name)
	}
	if want.isMember(admin.acct) == want.isMember(bob.acct) {
		t.Fatal("both or neither of the admins survived their mutual removal")
	}
	if !want.isMember(admin.acct) {
		t.Fatal("the junior admin removed the senior one")
	}
	if !want.removed[admin.acct] && !want.removed[bob.acct] {
		t.Fatal("the removed admin is not marked removed")
	}
	key := func(s *groupState) string {
		return fmt.Sprint(s.memberIDs(), s.epoch, s.name, len(s.heads), s.depth)
	}
	for range 50 {
		shuffled := append([]*groupOp(nil), all...)
		shuffled = append(shuffled, all[mrand.IntN(len(all))]) // a replay
		mrand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := computeState(shuffled); key(got) != key(want) {
			t.Fatalf("order changed the result: %s vs %s", key(got), key(want))
		}
	}
	// A create op for this group by anyone but its creator is refused.
	b := wire.Marshal(&wirepb.GroupOp{Version: wire.Version, GroupId: gid, Kind: wirepb.GroupOp_KIND_CREATE, Author: bob.id.Public().Marshal(), Member: salt, Depth: 1})
	raw := wire.Marshal(&wirepb.SignedGroupOp{Op: b, Signature: bob.id.Sign(opDomain, b)})
	if _, err := parseOp(raw, gid); err == nil {
		t.Fatal("a create op by someone else than the creator was accepted")
	}
	// A tampered op does not verify.
	tampered := append([]byte(nil), addBob.raw...)
	tampered[len(tampered)-70] ^= 1
	if _, err := parseOp(tampered, gid); err == nil {
		t.Fatal("a tampered op was accepted")
	}
}
