package mesh

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
)

// item is one carried envelope or receipt.
type item struct {
	id      mailbox.Hash // envelope hash, or receiptID(envelope hash)
	mailbox mailbox.ID
	hops    uint32 // hops it may still travel from here (see sendHops)
	expires time.Time
	env     []byte // nil for a receipt
	hosts   []string
	// receipt fields (env == nil)
	rcptHash mailbox.Hash
	rcptPub  []byte
	rcptSig  []byte
	own      bool   // offered by this node (our outgoing mail)
	from     string // the neighbour it came from ("" for our own)
	arrived  uint64 // arrival order (eviction: the oldest of the largest holder)
}

func (it *item) size() int { return len(it.env) }

// persisted reports whether an item belongs in the durable store: what we
// carry for others and receipts; our own mail is kept by the messenger's
// outbox, which offers it again after a restart.
func (it *item) persisted() bool { return !it.own }

// itemStore holds what a node carries, within bounds, and remembers the
// ids it has seen (held or dropped) so that nothing is taken twice.
type itemStore struct {
	mu        sync.Mutex
	items     map[mailbox.Hash]*item
	known     map[mailbox.Hash]time.Time // id → forget after
	envBytes  int                        // envelope bytes held
	envs      int                        // envelopes held
	carried   int                        // envelopes held for others (not own)
	receipts  int
	gen       uint64         // bumped whenever the id set changes
	byPeer    map[string]int // envelopes held, by the neighbour they came from
	peerBytes map[string]int // envelope bytes held, by the neighbour they came from
	seq       uint64         // arrival counter
	// journal lists the changes not yet written to the durable store: the
	// item to write, or nil to delete (nil map: no durable store).
	journal map[mailbox.Hash]*item

	maxItems, maxBytes, maxReceipts, maxKnown int
	now                                       func() time.Time
}

// quotaMemory is how long an envelope refused for its neighbour's share
// stays known.
const quotaMemory = 10 * time.Minute

func newItemStore(maxItems, maxBytes, maxReceipts int, now func() time.Time) *itemStore {
	return &itemStore{now: now,
		items: map[mailbox.Hash]*item{}, known: map[mailbox.Hash]time.Time{}, byPeer: map[string]int{},
		peerBytes: map[string]int{},
		maxItems:  maxItems, maxBytes: maxBytes, maxReceipts: maxReceipts,
		maxKnown: 8 * (maxItems + maxReceipts),
	}
}

// ids returns every known id (held or remembered).
func (s *itemStore) ids() []mailbox.Hash {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]mailbox.Hash, 0, len(s.known))
	for id := range s.known {
		out = append(out, id)
	}
	return out
}

func (s *itemStore) isKnown(id mailbox.Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.known[id]
	return ok
}

// remember marks id as seen until forget.
func (s *itemStore) remember(id mailbox.Hash, forget time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberLocked(id, forget)
}

func (s *itemStore) rememberLocked(id mailbox.Hash, forget time.Time) {
	old, ok := s.known[id]
	if !ok {
		s.gen++
	}
	if !ok || forget.After(old) {
		s.known[id] = forget
	}
	if len(s.known) > s.maxKnown {
		// Forget ids that are no longer held, any of them (map order is
		// random): at worst one comes back once more and is deduped then.
		for k := range s.known {
			if len(s.known) <= s.maxKnown*7/8 {
				break
			}
			if _, held := s.items[k]; !held {
				delete(s.known, k)
				s.gen++
			}
		}
	}
}

// generation identifies the current id set: equal generations, equal sets.
func (s *itemStore) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// get returns the item of id, or nil.
func (s *itemStore) get(id mailbox.Hash) *item {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.items[id]
}

// put stores it unless its id is known; when full it evicts (evictLocked),
// never our own outgoing mail for others'. It reports whether the item was
// stored.
func (s *itemStore) put(it *item) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.known[it.id]; ok {
		return false
	}
	// One neighbour may fill at most a share of the storage, in envelopes
	// and in bytes, so that a spammer cannot push everyone else's mail
	// out. What is refused for that reason is remembered only for a while
	// (not asked for again at once), then another neighbour may bring it.
	if it.env != nil && it.from != "" &&
		(s.byPeer[it.from] >= s.peerShare() || s.peerBytes[it.from]+it.size() > s.peerByteShare()) {
		forget := s.now().Add(quotaMemory)
		if it.expires.Before(forget) {
			forget = it.expires
		}
		s.rememberLocked(it.id, forget)
		return false
	}
	s.rememberLocked(it.id, it.expires)
	if it.env == nil {
		if s.receipts >= s.maxReceipts && !s.evictLocked(false, it) {
			return false
		}
		s.insertLocked(it)
		return true
	}
	if it.size() > s.maxBytes {
		return false
	}
	for s.envs >= s.maxItems || s.envBytes+it.size() > s.maxBytes {
		if !s.evictLocked(true, it) {
			return false
		}
	}
	s.insertLocked(it)
	return true
}

// insertLocked files an item that fits.
func (s *itemStore) insertLocked(it *item) {
	if it.arrived == 0 {
		s.seq++
		it.arrived = s.seq
	} else {
		s.seq = max(s.seq, it.arrived)
	}
	s.items[it.id] = it
	if s.journal != nil && it.persisted() {
		s.journal[it.id] = it
	}
	if it.env == nil {
		s.receipts++
		return
	}
	s.envs++
	s.envBytes += it.size()
	if !it.own {
		s.carried++
	}
	if it.from != "" {
		s.byPeer[it.from]++
		s.peerBytes[it.from] += it.size()
	}
}

// peerShare is how many envelopes one neighbour may have us hold, and
// peerByteShare how many bytes.
func (s *itemStore) peerShare() int     { return max(1, s.maxItems/PeerShareDivisor) }
func (s *itemStore) peerByteShare() int { return max(1, s.maxBytes/PeerShareDivisor) }

// evictLocked makes room for newcomer. Receipts: the one that arrived
// first gives way. Envelopes: the oldest of the neighbour that has us hold
// the most bytes (a fair share: whoever holds more than the others gives
// way first, and an item's claimed expiry plays no part, so that a long
// one cannot push others out); our own outgoing mail never gives way.
func (s *itemStore) evictLocked(envelope bool, newcomer *item) bool {
	var victim *item
	if !envelope {
		for _, it := range s.items {
			if it.env == nil && (victim == nil || it.arrived < victim.arrived) {
				victim = it
			}
		}
	} else {
		largest, most := "", -1
		for p, b := range s.peerBytes {
			if b > most || b == most && p < largest {
				largest, most = p, b
			}
		}
		if most < 0 {
			return false
		}
		for _, it := range s.items {
			if it.env != nil && !it.own && it.from == largest && (victim == nil || it.arrived < victim.arrived) {
				victim = it
			}
		}
	}
	if victim == nil {
		return false
	}
	s.deleteLocked(victim.id)
	return true
}

// drop deletes a held item (its id stays known).
func (s *itemStore) drop(id mailbox.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(id)
}

func (s *itemStore) deleteLocked(id mailbox.Hash) {
	it, ok := s.items[id]
	if !ok {
		return
	}
	delete(s.items, id)
	if s.journal != nil && it.persisted() {
		s.journal[id] = nil
	}
	if it.env == nil {
		s.receipts--
		return
	}
	s.envs--
	s.envBytes -= it.size()
	if !it.own {
		s.carried--
	}
	if it.from != "" {
		if s.byPeer[it.from]--; s.byPeer[it.from] <= 0 {
			delete(s.byPeer, it.from)
		}
		if s.peerBytes[it.from] -= it.size(); s.peerBytes[it.from] <= 0 {
			delete(s.peerBytes, it.from)
		}
	}
}

// takeJournal returns the changes to write to the durable store and starts
// a new journal.
func (s *itemStore) takeJournal() map[mailbox.Hash]*item {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.journal) == 0 {
		// Not the live map: the caller reads it without the lock.
		return nil
	}
	j := s.journal
	s.journal = map[mailbox.Hash]*item{}
	return j
}

// sweep drops expired items and forgets expired ids.
func (s *itemStore) sweep(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, it := range s.items {
		if !now.Before(it.expires) {
			s.deleteLocked(id)
			n++
		}
	}
	for id, t := range s.known {
		if _, held := s.items[id]; !held && !now.Before(t) {
			delete(s.known, id)
			s.gen++
		}
	}
	return n
}

// selectItems returns the held items matching f, in the order they
// reached us: an author offers its queue oldest first, so a carrier hands
// one sender's envelopes on, and to their owner, in the order they were
// written (the recipient still orders what comes by several ways: issue
// 13, store/order.go).
func (s *itemStore) selectItems(f func(*item) bool) []*item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*item
	for _, it := range s.items {
		if f(it) {
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b *item) int { return cmp.Compare(a.arrived, b.arrived) })
	return out
}

// counts reports what is held.
func (s *itemStore) counts() (envs, carried, bytes, receipts, known int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.envs, s.carried, s.envBytes, s.receipts, len(s.known)
}

// restoreJournal gives back changes a flush could not write; newer ones of
// the same ids win.
func (s *itemStore) restoreJournal(j map[mailbox.Hash]*item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, it := range j {
		if _, newer := s.journal[id]; !newer {
			s.journal[id] = it
		}
	}
}
