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
// write), and after seedRefill without serving a chunk the sender gives
// it to one more member (the first ones may have gone offline).
const (
	seedCopies = 1
	seedRefill = 30 * time.Second
)

// seedBudget gates what a sender serves of its swarm files.
type seedBudget struct {
	mu     sync.Mutex
	chunks map[Hash]*seedChunk
	now    func() time.Time
}

type seedChunk struct {
	peers []string // served to
	last  time.Time
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
	now := b.now()
	switch {
	case slices.Contains(c.peers, peer):
	case len(c.peers) < seedCopies || now.Sub(c.last) >= seedRefill:
		c.peers = append(c.peers, peer)
	default:
		return false
	}
	c.last = now
	return true
}
