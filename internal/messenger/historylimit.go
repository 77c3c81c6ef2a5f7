package messenger

import (
	"errors"
	"sync"
	"time"
)

// Bounds of /samizdat/history/1 (issue 14): an answer is read only up to
// historyMaxBytes (before, any topic peer could make us read 500 frames of
// the largest size before anything was checked), and each peer may ask us
// for history only at a bounded rate (each request is a store read of up
// to a page).
const (
	historyMaxBytes = 16 << 20
	// historyBurst requests at once, then historyRate per second, per peer.
	historyBurst = 20
	historyRate  = 1.0
	// historyPeersMax bounds the peers whose rate is tracked; beyond it
	// the fullest buckets (peers quiet for longest) are forgotten.
	historyPeersMax = 1024
)

// errHistoryTooLarge is returned by fetchHistory, with the items read so
// far, when a peer's answer exceeds historyMaxBytes.
var errHistoryTooLarge = errors.New("history answer exceeds the byte bound")

// peerRate is a token bucket per peer.
type peerRate struct {
	mu    sync.Mutex
	now   func() time.Time // test hook; nil: time.Now
	peers map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token of peer's bucket, reporting whether there was one.
func (pr *peerRate) allow(peer string) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	now := time.Now()
	if pr.now != nil {
		now = pr.now()
	}
	if pr.peers == nil {
		pr.peers = map[string]*bucket{}
	}
	b := pr.peers[peer]
	if b == nil {
		if len(pr.peers) >= historyPeersMax {
			pr.forget(now)
		}
		b = &bucket{tokens: historyBurst, last: now}
		pr.peers[peer] = b
	}
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(historyBurst, b.tokens+d*historyRate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// forget drops the buckets that have refilled (a new bucket is the same),
// or, if none has, half of them: the map stays bounded either way.
func (pr *peerRate) forget(now time.Time) {
	for p, b := range pr.peers {
		if b.tokens+now.Sub(b.last).Seconds()*historyRate >= historyBurst {
			delete(pr.peers, p)
		}
	}
	for p := range pr.peers {
		if len(pr.peers) < historyPeersMax/2 {
			break
		}
		delete(pr.peers, p)
	}
}
