package media

import (
	"slices"
	"sync"
	"time"
)

// A file sent to a group is uploaded once: its sender gives each data
// chunk to seedCopies members and then answers busy, so that the others
// take it from those who have it (FetchSwarm prefers them anyway; this
// bounds the sender's upload whatever the fetchers do). A member asking
// again for a chunk it was given is served (it lost it: a crash mid-
// write). A member refused a chunk for seedRefill gets it too: it found
// no one else to take it from (the first ones went offline). The refill
// is per member that waited, not per chunk and clock: on a slow machine
// or link, a swarm taking minutes must not make the sender upload more.
const (
	seedCopies = 1
	seedRefill = 2 * time.Minute
)

// seedBudget gates what a sender serves of its swarm files.
type seedBudget struct {
	mu     sync.Mutex
	chunks map[Hash]*seedChunk
	now    func() time.Time
}

type seedChunk struct {
	peers   []string             // served to
	refused map[string]time.Time // first refusal, by member
}

func newSeedBudget() *seedBudget {
	return &seedBudget{chunks: map[Hash]*seedChunk{}, now: time.Now}
}

// add puts the chunks hs under the budget.
func (b *seedBudget) add(hs []Hash) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range hs {
		if b.chunks[h] == nil {
			b.chunks[h] = &seedChunk{}
		}
	}
}

// allow says whether chunk h goes to peer now, and counts it if so.
func (b *seedBudget) allow(h Hash, peer string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.chunks[h]
	if c == nil {
		return true // not a swarm chunk
	}
	if slices.Contains(c.peers, peer) {
		return true
	}
	now := b.now()
	first, waited := c.refused[peer]
	if len(c.peers) < seedCopies || waited && now.Sub(first) >= seedRefill {
		c.peers = append(c.peers, peer)
		delete(c.refused, peer)
		return true
	}
	if !waited {
		if c.refused == nil {
			c.refused = map[string]time.Time{}
		}
		c.refused[peer] = now
	}
	return false
}
