package mailbox

import (
	"sync"
	"time"
)

// maxBuckets bounds the peers the limiter remembers; beyond it, buckets
// that have refilled (peers that went quiet) are forgotten.
const maxBuckets = 10000

// limiter is a token bucket per peer id.
type limiter struct {
	rate  float64 // tokens per second; <= 0 means unlimited
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token from peer's bucket if it has one.
func (l *limiter) allow(peer string) bool {
	if l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[peer]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[peer] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune forgets full buckets; if none is full, it forgets them all rather
// than grow without bound (a peer flooding with fresh ids gains nothing
// over a fresh id per bucket anyway).
func (l *limiter) prune(now time.Time) {
	for p, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, p)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets)
	}
}
