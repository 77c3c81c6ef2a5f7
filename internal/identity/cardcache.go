package identity

import (
	"crypto/sha256"
	"slices"
	"sync"
)

// Parsing a signed card verifies its signature, every device certificate
// and the prekey bundle's signatures: ~6 Ed25519 verifications, ~0.3 ms of
// CPU. The receive path checks the sender's held card for every envelope
// (issue 18: 39 % of the CPU of a 1:1 burst), always the same bytes. A
// card is a pure function of its bytes, so the cards that verified are
// kept, by the SHA-256 of their bytes, and each caller gets its own copy.

// cardCacheSize bounds the cache (a card carries no one-time prekeys: ~3 KB
// parsed, so ~1.5 MB at most); when full it starts afresh.
const cardCacheSize = 512

type cardKey struct {
	sum     [sha256.Size]byte
	keepOld bool
}

var cardCache struct {
	mu sync.Mutex
	m  map[cardKey]*Card
}

func cachedCard(k cardKey) *Card {
	cardCache.mu.Lock()
	c := cardCache.m[k]
	cardCache.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.clone()
}

func cacheCard(k cardKey, c *Card) {
	c = c.clone()
	cardCache.mu.Lock()
	if cardCache.m == nil || len(cardCache.m) >= cardCacheSize {
		cardCache.m = make(map[cardKey]*Card, cardCacheSize)
	}
	cardCache.m[k] = c
	cardCache.mu.Unlock()
}

// clone copies c deeply enough that changing the copy's fields, slices or
// bundle leaves c as it was.
func (c *Card) clone() *Card {
	d := *c
	d.Devices = slices.Clone(c.Devices)
	for i := range d.Devices {
		d.Devices[i].Addrs = slices.Clone(d.Devices[i].Addrs)
		d.Devices[i].Key = slices.Clone(d.Devices[i].Key)
		d.Devices[i].Signature = slices.Clone(d.Devices[i].Signature)
	}
	d.Mailboxes = slices.Clone(c.Mailboxes)
	for i := range d.Mailboxes {
		d.Mailboxes[i].Addrs = slices.Clone(d.Mailboxes[i].Addrs)
		d.Mailboxes[i].ID = slices.Clone(d.Mailboxes[i].ID)
	}
	d.MeshMailbox = slices.Clone(c.MeshMailbox)
	if c.Bundle != nil {
		b := *c.Bundle
		b.KEMPrekey = slices.Clone(b.KEMPrekey)
		b.OneTimePrekeys = slices.Clone(b.OneTimePrekeys)
		b.KEMOneTimePrekeys = slices.Clone(b.KEMOneTimePrekeys)
		for i := range b.KEMOneTimePrekeys {
			b.KEMOneTimePrekeys[i].Key = slices.Clone(b.KEMOneTimePrekeys[i].Key)
		}
		d.Bundle = &b
	}
	return &d
}
