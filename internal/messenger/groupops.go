package messenger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Group membership is a hash DAG of signed operations (create, add,
// remove, leave, rename, make admin), in the manner of Matrix's auth
// chain and of operation-based CRDTs: each op names as parents the hashes
// of the ops its author had applied (the heads) and carries its depth
// (1 + the parents' greatest depth). Every member keeps every op it has
// seen and computes the membership from the complete ones (whose
// ancestors are all present) as a pure function of that set, so two
// members holding the same ops compute the same membership whatever order
// the ops reached them in, and a replayed op (same hash) changes nothing.
//
// The rule (docs/ARCHITECTURE.md, "Group authority"):
//  1. Ops are replayed in (depth, hash) order; an op applies only if its
//     author may make it in the state so far (an admin, or the leaver).
//  2. Admins are ranked by seniority: the creator first, then in the
//     (depth, hash) order of the ops that made them admin. An admin may
//     remove members and admins junior to it, never a senior one.
//  3. Removal wins: an op is void if a removal (or departure) of its
//     author that applies is concurrent with it (neither is an ancestor of
//     the other). A removed member cannot tell a real concurrent op from
//     one it signs later on parents from before its removal (a backdated
//     op), so both are void: a removed member can neither keep the group
//     nor remove, add, promote or rename anything once the removal is
//     known, whatever order the ops arrive in. Of two admins removing each
//     other at once the senior one stays (2), so "remove the remover"
//     signed after the fact never applies.
// Rule 3 depends on which removals apply, which depends on rule 3, so the
// state is computed as a fixed point: replay, void the ops concurrent with
// the removals that applied, replay again until the void set is stable.
// Voiding can only follow seniority upwards (an op is voided by a more
// senior admin's removal), so this settles in a few rounds; a bound keeps
// a contrived set deterministic too.
//
// We chose this over version vectors: ops are self-certifying (signed,
// hash-linked), so any member can forward or serve them, and a member
// that missed some can tell from the parents what is missing.

const opDomain = "samizdat/group/v1/op"

// groupIDDomain binds a group id to its creator: id = SHA-256(domain ||
// creator identity || salt), the salt carried in the create op, so nobody
// but the creator can write a valid create op for a group.
const groupIDDomain = "samizdat/group/v1/id"

// errBadOp is wrapped by parseOp's errors.
var errBadOp = errors.New("invalid group operation")

// groupOp is a parsed and signature-checked op.
type groupOp struct {
	hash   [32]byte
	raw    []byte
	op     *wirepb.GroupOp
	author string        // account id
	card   []byte        // ADD: the new member's signed card (CREATE: the creator's)
	member string        // ADD: the new member's account id; REMOVE, ADMIN: the target
	name   string        // ADD, CREATE: the name on the card
	added  []addedMember // ADD_MANY (groupbatch.go)
}

// opCache memoises parseOp: checking an op costs several signature
// verifications (the op, the card, its prekeys) and every membership
// computation replays all ops. An op's validity depends only on its bytes
// and group, so entries never go stale.
type opCache struct {
	mu sync.Mutex
	m  map[[32]byte]*groupOp
}

const opCacheSize = 20_000

func (oc *opCache) parse(raw, gid []byte) (*groupOp, error) {
	h := sha256.Sum256(append(bytes.Clone(gid), raw...))
	oc.mu.Lock()
	o, ok := oc.m[h]
	oc.mu.Unlock()
	if ok {
		return o, nil
	}
	o, err := parseOp(raw, gid)
	if err != nil {
		return nil, err
	}
	oc.mu.Lock()
	if oc.m == nil || len(oc.m) >= opCacheSize {
		oc.m = map[[32]byte]*groupOp{}
	}
	oc.m[h] = o
	oc.mu.Unlock()
	return o, nil
}

func groupID(creator keys.PublicIdentity, salt []byte) []byte {
	h := sha256.New()
	h.Write([]byte(groupIDDomain))
	h.Write([]byte{0})
	h.Write(creator.Marshal())
	h.Write(salt)
	return h.Sum(nil)
}

// signOp signs an op with our account key.
func (m *Messenger) signOp(op *wirepb.GroupOp) []byte {
	op.Version = wire.Version
	op.Author = m.id.Public().Marshal()
	b := wire.Marshal(op)
	return wire.Marshal(&wirepb.SignedGroupOp{Op: b, Signature: m.id.Sign(opDomain, b)})
}

// parseOp decodes an op of group gid and checks its signature and fields.
func parseOp(raw, gid []byte) (*groupOp, error) {
	s, op, err := wire.ParseSignedGroupOp(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadOp, err)
	}
	if !bytes.Equal(op.GroupId, gid) {
		return nil, fmt.Errorf("%w: another group's", errBadOp)
	}
	author, err := keys.ParsePublicIdentity(op.Author)
	if err != nil {
		return nil, fmt.Errorf("%w: author: %w", errBadOp, err)
	}
	if !author.Verify(opDomain, s.Op, s.Signature) {
		return nil, fmt.Errorf("%w: bad signature", errBadOp)
	}
	g := &groupOp{hash: sha256.Sum256(raw), raw: raw, op: op, author: identity.AccountID(author)}
	switch op.Kind {
	case wirepb.GroupOp_KIND_CREATE:
		if !bytes.Equal(groupID(author, []byte(op.Member)), gid) {
			return nil, fmt.Errorf("%w: create op by someone else than the creator", errBadOp)
		}
		g.card = op.MemberCard
		if card, err := identity.ParseHistoricCard(op.MemberCard); err == nil && card.AccountID() == g.author {
			g.name = card.Name
		}
	case wirepb.GroupOp_KIND_ADD:
		card, err := identity.ParseHistoricCard(op.MemberCard)
		if err != nil {
			return nil, fmt.Errorf("%w: member card: %w", errBadOp, err)
		}
		g.card, g.member, g.name = op.MemberCard, card.AccountID(), card.Name
	case wirepb.GroupOp_KIND_REMOVE, wirepb.GroupOp_KIND_ADMIN:
		if _, err := identity.ParseAccountID(op.Member); err != nil {
			return nil, fmt.Errorf("%w: member: %w", errBadOp, err)
		}
		g.member = op.Member
	case wirepb.GroupOp_KIND_ADD_MANY:
		if g.added, err = parseAdded(op.Added); err != nil {
			return nil, err
		}
	case wirepb.GroupOp_KIND_LEAVE, wirepb.GroupOp_KIND_RENAME:
	default:
		return nil, fmt.Errorf("%w: unknown kind", errBadOp)
	}
	return g, nil
}

// groupMember is one member in a computed state.
type groupMember struct {
	card  []byte
	name  string // from their card
	admin bool
	rank  opRank // admin: seniority (lower is more senior)
}

// opRank orders ops as the replay does: by depth, then hash.
type opRank struct {
	depth uint64
	hash  [32]byte
}

func (r opRank) less(o opRank) bool {
	if r.depth != o.depth {
		return r.depth < o.depth
	}
	return bytes.Compare(r.hash[:], o.hash[:]) < 0
}

func rankOf(o *groupOp) opRank { return opRank{o.op.Depth, o.hash} }

// groupState is the membership computed from a group's ops.
type groupState struct {
	created bool
	name    string
	members map[string]*groupMember // by account id
	removed map[string]bool         // removed or departed, not added again
	// epoch counts the removals and departures applied: every member's
	// sender key must be of this epoch (a new one after each).
	epoch uint32
	heads [][]byte // hashes of the applied ops no applied op names as parent
	depth uint64   // greatest depth applied
	// applied are the hashes of the ops applied, in order.
	applied [][32]byte
	// removals are the applied removals and departures: the op and whom
	// it removed.
	removals []removal
}

type removal struct {
	op     *groupOp
	member string
}

func (s *groupState) isMember(acct string) bool { _, ok := s.members[acct]; return ok }

func (s *groupState) isAdmin(acct string) bool {
	mb, ok := s.members[acct]
	return ok && mb.admin
}

// canRemove reports whether author may remove member: an admin removes a
// member who is not an admin, or an admin junior to it.
func (s *groupState) canRemove(author, member string) bool {
	a, t := s.members[author], s.members[member]
	if a == nil || t == nil || !a.admin || author == member {
		return false
	}
	return !t.admin || a.rank.less(t.rank)
}

// memberIDs returns the members' account ids, sorted.
func (s *groupState) memberIDs() []string {
	out := make([]string, 0, len(s.members))
	for a := range s.members {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// maxVoidRounds bounds the fixed-point iteration of computeState.
const maxVoidRounds = 16

// computeState computes a group's membership from ops (in any order,
// duplicates allowed); see the comment at the top of this file.
func computeState(ops []*groupOp) *groupState {
	byHash := make(map[[32]byte]*groupOp, len(ops))
	for _, o := range ops {
		byHash[o.hash] = o
	}
	// Depth of each complete op (all ancestors present, depths consistent);
	// incomplete ops wait for their parents.
	depth := map[[32]byte]uint64{}
	var visit func(o *groupOp, stack int) bool
	visit = func(o *groupOp, stack int) bool {
		if _, ok := depth[o.hash]; ok {
			return true
		}
		if stack > len(byHash) {
			return false // a cycle: impossible with hashes, but bounded anyway
		}
		var d uint64
		for _, p := range o.op.Parents {
			var h [32]byte
			copy(h[:], p)
			po, ok := byHash[h]
			if !ok || !visit(po, stack+1) {
				return false
			}
			d = max(d, depth[h])
		}
		if o.op.Depth != d+1 {
			return false
		}
		depth[o.hash] = d + 1
		return true
	}
	var order []*groupOp
	for _, o := range byHash {
		if visit(o, 0) {
			order = append(order, o)
		}
	}
	slices.SortFunc(order, func(a, b *groupOp) int {
		switch ra, rb := rankOf(a), rankOf(b); {
		case ra.less(rb):
			return -1
		case rb.less(ra):
			return 1
		}
		return 0
	})
	dag := newOpDAG(order)
	void := map[[32]byte]bool{}
	var st *groupState
	for round := 0; ; round++ {
		st = replay(order, void)
		next := dag.voided(order, st.removals)
		if maps.Equal(next, void) {
			break
		}
		if round == maxVoidRounds {
			// Not settled (a contrived set): void everything any round
			// voided, deterministically.
			maps.Copy(void, next)
			st = replay(order, void)
			break
		}
		void = next
	}
	return st
}

// replay applies the ops in order, skipping the void ones.
func replay(order []*groupOp, void map[[32]byte]bool) *groupState {
	st := &groupState{members: map[string]*groupMember{}, removed: map[string]bool{}}
	isParent := map[[32]byte]bool{}
	for _, o := range order {
		if void[o.hash] || !st.apply(o) {
			continue
		}
		st.applied = append(st.applied, o.hash)
		st.depth = max(st.depth, o.op.Depth)
		for _, p := range o.op.Parents {
			var h [32]byte
			copy(h[:], p)
			isParent[h] = true
		}
	}
	for _, h := range st.applied {
		if !isParent[h] {
			st.heads = append(st.heads, bytes.Clone(h[:]))
		}
	}
	return st
}

// opDAG answers which ops are concurrent with a removal.
type opDAG struct {
	index    map[[32]byte]int
	parents  [][]int
	children [][]int
}

func newOpDAG(order []*groupOp) *opDAG {
	n := len(order)
	d := &opDAG{index: make(map[[32]byte]int, n), parents: make([][]int, n), children: make([][]int, n)}
	for i, o := range order {
		d.index[o.hash] = i
	}
	for i, o := range order {
		for _, p := range o.op.Parents {
			var h [32]byte
			copy(h[:], p)
			j := d.index[h]
			d.parents[i] = append(d.parents[i], j)
			d.children[j] = append(d.children[j], i)
		}
	}
	return d
}

// reach marks every op reachable from op i along next (i itself too).
func reach(next [][]int, i int, seen []bool) {
	stack := []int{i}
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !seen[j] {
			seen[j] = true
			stack = append(stack, next[j]...)
		}
	}
}

// voided returns the ops made void by the removals (rule 3): every op by a
// removed member that is concurrent with its removal.
func (d *opDAG) voided(order []*groupOp, removals []removal) map[[32]byte]bool {
	void := map[[32]byte]bool{}
	related := make([]bool, len(order))
	for _, r := range removals {
		clear(related)
		ri := d.index[r.op.hash]
		reach(d.parents, ri, related)  // r and its ancestors
		reach(d.children, ri, related) // and its descendants
		for i, o := range order {
			if o.author == r.member && !related[i] {
				void[o.hash] = true
			}
		}
	}
	return void
}

// apply applies one op if it is allowed at this point.
func (s *groupState) apply(o *groupOp) bool {
	op := o.op
	if op.Kind == wirepb.GroupOp_KIND_CREATE {
		if s.created {
			return false
		}
		s.created, s.name = true, op.Name
		s.members[o.author] = &groupMember{card: o.card, name: o.name, admin: true, rank: rankOf(o)}
		return true
	}
	if !s.created || !s.isMember(o.author) {
		return false
	}
	switch op.Kind {
	case wirepb.GroupOp_KIND_ADD:
		if !s.isAdmin(o.author) || s.isMember(o.member) || len(s.members) >= wire.MaxGroupMembers {
			return false
		}
		s.members[o.member] = &groupMember{card: o.card, name: o.name}
		delete(s.removed, o.member)
	case wirepb.GroupOp_KIND_ADD_MANY:
		return s.applyAddMany(o)
	case wirepb.GroupOp_KIND_REMOVE:
		if !s.canRemove(o.author, o.member) {
			return false
		}
		delete(s.members, o.member)
		s.removed[o.member] = true
		s.epoch++
		s.removals = append(s.removals, removal{o, o.member})
	case wirepb.GroupOp_KIND_LEAVE:
		delete(s.members, o.author)
		s.removed[o.author] = true
		s.epoch++
		s.removals = append(s.removals, removal{o, o.author})
	case wirepb.GroupOp_KIND_RENAME:
		if !s.isAdmin(o.author) {
			return false
		}
		s.name = op.Name
	case wirepb.GroupOp_KIND_ADMIN:
		if !s.isAdmin(o.author) || !s.isMember(o.member) || s.isAdmin(o.member) {
			return false
		}
		s.members[o.member].admin = true
		s.members[o.member].rank = rankOf(o)
	default:
		return false
	}
	return true
}

// nextOp fills in the parents and depth of a new op from the state.
func (s *groupState) nextOp(op *wirepb.GroupOp) {
	op.Parents = s.heads
	op.Depth = s.depth + 1
}

func opHashHex(h [32]byte) string { return hex.EncodeToString(h[:8]) }
