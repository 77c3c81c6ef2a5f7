package messenger

import (
	"bytes"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// stateKey is everything a member derives from the ops: who is in, who is
// admin, the epoch, the name and the heads a new op would name.
func stateKey(s *groupState) string {
	var b strings.Builder
	for _, a := range s.memberIDs() {
		fmt.Fprintf(&b, "%s:%v ", a[:8], s.members[a].admin)
	}
	heads := slices.Clone(s.heads)
	slices.SortFunc(heads, bytes.Compare)
	for _, h := range heads {
		b.WriteString(hex.EncodeToString(h[:4]) + ",")
	}
	fmt.Fprintf(&b, " epoch=%d name=%q depth=%d", s.epoch, s.name, s.depth)
	return b.String()
}

// checkIgnored delivers ops to a member in the given order and checks, at
// every step at which the member holds the removal (with its ancestors),
// that the member's state is exactly what it would be without the
// backdated ops: they are ignored, whatever came before.
func checkIgnored(t *testing.T, order []*groupOp, removal *groupOp, backdated map[[32]byte]bool) {
	t.Helper()
	var held, honest []*groupOp
	for _, o := range order {
		held = append(held, o)
		if !backdated[o.hash] {
			honest = append(honest, o)
		}
		ref := computeState(honest)
		if !slices.Contains(ref.applied, removal.hash) {
			continue // the removal is not complete here yet
		}
		if got, want := stateKey(computeState(held)), stateKey(ref); got != want {
			t.Fatalf("after %d of %d ops the backdated ops changed the state:\n got %s\nwant %s", len(held), len(order), got, want)
		}
	}
}

// TestGroupRemovedAdminCannotBackdate is the attack of issue 14: bob, an
// admin removed by the more senior admin xena, signs ops on parents from
// before his removal (so they sort before it): remove the remover, remove
// carol, add mallory, rename, make carol admin. Every member ignores them
// in every delivery order (all 5,040 orders of the late ops), and an
// honest concurrent op of the creator still applies.
func TestGroupRemovedAdminCannotBackdate(t *testing.T) {
	creator, xena, bob, carol := newOpUser(t, "creator"), newOpUser(t, "xena"), newOpUser(t, "bob"), newOpUser(t, "carol")
	dave, mallory := newOpUser(t, "dave"), newOpUser(t, "mallory")
	salt := hex.EncodeToString([]byte("backdate-salt-01"))
	gid := groupID(creator.id.Public(), []byte(salt))
	create := creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_CREATE, Name: "g", Member: salt, MemberCard: creator.card})
	addX := creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: xena.card}, create)
	addB := creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: bob.card}, addX)
	addC := creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: carol.card}, addB)
	adminX := creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADMIN, Member: xena.acct}, addC)
	adminB := creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADMIN, Member: bob.acct}, adminX)
	base := []*groupOp{create, addX, addB, addC, adminX, adminB}

	// xena renames, then removes bob: her removal is two deeper than adminB.
	rename := xena.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_RENAME, Name: "xena's"}, adminB)
	rmBob := xena.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: bob.acct}, rename)
	// The creator adds dave, concurrently with all of it.
	addDave := creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: dave.card}, adminB)
	// Bob, removed, backdates onto adminB (one deep: they sort first).
	bRmX := bob.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: xena.acct}, adminB)
	bRmC := bob.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: carol.acct}, adminB)
	bAddM := bob.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: mallory.card}, adminB)
	bName := bob.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_RENAME, Name: "bob's"}, adminB)
	bAdmC := bob.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADMIN, Member: carol.acct}, adminB)
	backdated := map[[32]byte]bool{}
	for _, o := range []*groupOp{bRmX, bRmC, bAddM, bName, bAdmC} {
		backdated[o.hash] = true
	}

	final := computeState(append(slices.Clone(base), rename, rmBob, addDave, bRmX, bRmC, bAddM, bName, bAdmC))
	if want := []string{carol.acct, creator.acct, dave.acct, xena.acct}; !slices.Equal(final.memberIDs(), sortedIDs(want)) {
		t.Fatalf("members %v, want creator, xena, carol, dave (bob's backdated ops must not apply)", final.memberIDs())
	}
	if final.name != "xena's" || final.isAdmin(carol.acct) || final.epoch != 1 {
		t.Fatalf("name %q, carol admin %v, epoch %d", final.name, final.isAdmin(carol.acct), final.epoch)
	}

	late := []*groupOp{rename, rmBob, addDave, bRmX, bRmC, bAddM, bName}
	n := 0
	permute(late, func(p []*groupOp) {
		n++
		// bAdmC goes last here and first below: 2 × 5,040 orders.
		checkIgnored(t, append(append(slices.Clone(base), p...), bAdmC), rmBob, backdated)
		checkIgnored(t, append(append([]*groupOp{bAdmC}, base...), p...), rmBob, backdated)
	})
	if n != 5040 {
		t.Fatalf("%d orders", n)
	}
}

func sortedIDs(ids []string) []string { slices.Sort(ids); return ids }

// permute calls f with every permutation of ops (Heap's algorithm).
func permute(ops []*groupOp, f func([]*groupOp)) {
	a := slices.Clone(ops)
	c := make([]int, len(a))
	f(a)
	for i := 0; i < len(a); {
		if c[i] < i {
			if i%2 == 0 {
				a[0], a[i] = a[i], a[0]
			} else {
				a[c[i]], a[i] = a[i], a[c[i]]
			}
			f(a)
			c[i]++
			i = 0
		} else {
			c[i] = 0
			i++
		}
	}
}

// TestGroupBackdateRandom: a larger group with concurrent honest history
// (each op built on a possibly stale view), an admin removed by a senior
// one, and a dozen ops the removed admin backdates onto random points of
// its past view; every member ignores them in 200 random delivery orders.
func TestGroupBackdateRandom(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(14, 1))
	users := make([]opUser, 14)
	for i := range users {
		users[i] = newOpUser(t, fmt.Sprintf("u%d", i))
	}
	creator, xena, bob := users[0], users[1], users[2]
	byAcct := map[string]opUser{}
	for _, u := range users {
		byAcct[u.acct] = u
	}
	salt := hex.EncodeToString([]byte("backdate-salt-02"))
	gid := groupID(creator.id.Public(), []byte(salt))
	ops := []*groupOp{creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_CREATE, Name: "g", Member: salt, MemberCard: creator.card})}
	// next signs an op built on the view of the first k ops.
	next := func(u opUser, k int, op *wirepb.GroupOp) *groupOp {
		st := computeState(ops[:k])
		var parents []*groupOp
		for _, h := range st.heads {
			for _, o := range ops[:k] {
				if bytes.Equal(o.hash[:], h) {
					parents = append(parents, o)
				}
			}
		}
		return u.sign(t, gid, op, parents...)
	}
	for _, u := range users[1:6] {
		ops = append(ops, next(creator, len(ops), &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: u.card}))
	}
	ops = append(ops, next(creator, len(ops), &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADMIN, Member: xena.acct}))
	ops = append(ops, next(creator, len(ops), &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADMIN, Member: bob.acct}))
	// honest writes a random allowed op of an admin other than bob (or, as
	// long as he is in, bob) on a view up to three ops stale.
	honest := func(bobToo bool) {
		k := max(1, len(ops)-rng.IntN(4))
		st := computeState(ops[:k])
		var admins []string
		for _, a := range st.memberIDs() {
			if st.isAdmin(a) && (bobToo || a != bob.acct) {
				admins = append(admins, a)
			}
		}
		author := byAcct[admins[rng.IntN(len(admins))]]
		switch rng.IntN(3) {
		case 0:
			for _, u := range users[6:] {
				if !st.isMember(u.acct) {
					ops = append(ops, next(author, k, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: u.card}))
					return
				}
			}
		case 1:
			for _, a := range st.memberIDs() {
				if !st.isAdmin(a) && a != author.acct {
					ops = append(ops, next(author, k, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: a}))
					return
				}
			}
		}
		ops = append(ops, next(author, k, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_RENAME, Name: fmt.Sprint("n", len(ops))}))
	}
	for range 12 {
		honest(true)
	}
	beforeRemoval := len(ops)
	rmBob := next(xena, len(ops), &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: bob.acct})
	ops = append(ops, rmBob)
	for range 12 {
		honest(false)
	}
	// Bob backdates onto views from before his removal.
	backdated := map[[32]byte]bool{}
	nHonest := len(ops)
	for range 12 {
		k := 8 + rng.IntN(beforeRemoval-8+1) // after bob became admin
		st := computeState(ops[:k])
		if !st.isAdmin(bob.acct) {
			continue
		}
		var op *wirepb.GroupOp
		switch rng.IntN(4) {
		case 0:
			op = &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: xena.acct}
		case 1:
			ids := st.memberIDs()
			op = &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: ids[rng.IntN(len(ids))]}
		case 2:
			op = &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: users[6+rng.IntN(len(users)-6)].card}
		default:
			op = &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_RENAME, Name: "bob's"}
		}
		o := next(bob, k, op)
		backdated[o.hash] = true
		ops = append(ops, o)
	}
	if len(backdated) < 6 {
		t.Fatalf("only %d backdated ops", len(backdated))
	}
	final := computeState(ops)
	if final.isMember(bob.acct) || !final.isMember(xena.acct) || final.name == "bob's" {
		t.Fatalf("bob in %v, xena in %v, name %q", final.isMember(bob.acct), final.isMember(xena.acct), final.name)
	}
	if got, want := stateKey(final), stateKey(computeState(ops[:nHonest])); got != want {
		t.Fatalf("backdated ops changed the state:\n got %s\nwant %s", got, want)
	}
	for range 200 {
		order := slices.Clone(ops)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		checkIgnored(t, order, rmBob, backdated)
	}
}

// BenchmarkComputeStateChurn: the membership of a full group (1,000
// members) with 300 removals in its history (the fixed point of rule 3 walks the DAG
// once per removal).
func BenchmarkComputeStateChurn(b *testing.B) {
	t := &testing.T{}
	creator := newOpUser(t, "creator")
	salt := hex.EncodeToString([]byte("bench-salt-00001"))
	gid := groupID(creator.id.Public(), []byte(salt))
	last := creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_CREATE, Name: "g", Member: salt, MemberCard: creator.card})
	ops := []*groupOp{last}
	for i := range 1299 {
		u := newOpUser(t, fmt.Sprint("u", i))
		last = creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_ADD, MemberCard: u.card}, last)
		ops = append(ops, last)
		if i < 300 { // churn: the first 300 leave again
			last = creator.sign(t, gid, &wirepb.GroupOp{Kind: wirepb.GroupOp_KIND_REMOVE, Member: u.acct}, last)
			ops = append(ops, last)
		}
	}
	if st := computeState(ops); len(st.members) != 1000 || st.epoch != 300 {
		b.Fatalf("%d members, epoch %d", len(st.members), st.epoch)
	}
	b.ResetTimer()
	for range b.N {
		computeState(ops)
	}
}
