package messenger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
// seen and computes the membership by replaying the complete ones (whose
// ancestors are all present) in one deterministic order, (depth, hash),
// checking at each step that the op is allowed (its author an admin, or
// the leaver itself). Two members holding the same set of ops therefore
// compute the same membership, whatever order the ops reached them in;
// a replayed op is a duplicate of a stored one (same hash) and changes
// nothing; an op whose author was removed before it in that order is
// skipped. Concurrent conflicting ops (two admins removing each other)
// are settled by the order: the first wins, the second's author is gone.
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
	author string // account id
	card   []byte // ADD: the new member's signed card (CREATE: the creator's)
	member string // ADD: the new member's account id; REMOVE, ADMIN: the target
	name   string // ADD, CREATE: the name on the card
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
		if card, err := identity.ParseSignedCard(op.MemberCard); err == nil && card.AccountID() == g.author {
			g.name = card.Name
		}
	case wirepb.GroupOp_KIND_ADD:
		card, err := identity.ParseSignedCard(op.MemberCard)
		if err != nil {
			return nil, fmt.Errorf("%w: member card: %w", errBadOp, err)
		}
		g.card, g.member, g.name = op.MemberCard, card.AccountID(), card.Name
	case wirepb.GroupOp_KIND_REMOVE, wirepb.GroupOp_KIND_ADMIN:
		if _, err := identity.ParseAccountID(op.Member); err != nil {
			return nil, fmt.Errorf("%w: member: %w", errBadOp, err)
		}
		g.member = op.Member
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
}

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
}

func (s *groupState) isMember(acct string) bool { _, ok := s.members[acct]; return ok }

func (s *groupState) isAdmin(acct string) bool {
	mb, ok := s.members[acct]
	return ok && mb.admin
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

// computeState replays ops (in any order, duplicates allowed) into the
// group's membership; see the comment at the top of this file.
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
		if a.op.Depth != b.op.Depth {
			if a.op.Depth < b.op.Depth {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.hash[:], b.hash[:])
	})
	st := &groupState{members: map[string]*groupMember{}, removed: map[string]bool{}}
	isParent := map[[32]byte]bool{}
	for _, o := range order {
		if !st.apply(o) {
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

// apply applies one op if it is allowed at this point.
func (s *groupState) apply(o *groupOp) bool {
	op := o.op
	if op.Kind == wirepb.GroupOp_KIND_CREATE {
		if s.created {
			return false
		}
		s.created, s.name = true, op.Name
		s.members[o.author] = &groupMember{card: o.card, name: o.name, admin: true}
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
	case wirepb.GroupOp_KIND_REMOVE:
		if !s.isAdmin(o.author) || !s.isMember(o.member) || o.member == o.author {
			return false
		}
		delete(s.members, o.member)
		s.removed[o.member] = true
		s.epoch++
	case wirepb.GroupOp_KIND_LEAVE:
		delete(s.members, o.author)
		s.removed[o.author] = true
		s.epoch++
	case wirepb.GroupOp_KIND_RENAME:
		if !s.isAdmin(o.author) {
			return false
		}
		s.name = op.Name
	case wirepb.GroupOp_KIND_ADMIN:
		if !s.isAdmin(o.author) || !s.isMember(o.member) {
			return false
		}
		s.members[o.member].admin = true
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
