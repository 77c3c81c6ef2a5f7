package p2p

// Per-path exponential backoff (DESIGN §7, issue 15): beside the memory of
// which transports worked, each path (remote IP, port and transport) that
// failed to dial is left out of the next dials for a time that doubles with
// each failure in a row, so that a blocked transport costs nothing after a
// few tries. A path that connects is forgiven at once. When every address
// of a dial is backing off, all are dialled anyway: there is nothing better
// to try, and the outbox's own retry schedule paces those attempts.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// Path backoff bounds: the first failure keeps a path out for
// PathBackoffBase, each further one doubles that, up to PathBackoffMax.
const (
	PathBackoffBase = 10 * time.Second
	PathBackoffMax  = 30 * time.Minute
)

type pathState struct {
	fails int
	until time.Time
}

type pathBackoff struct {
	now   func() time.Time
	mu    sync.Mutex
	paths map[string]*pathState
}

func newPathBackoff(now func() time.Time) *pathBackoff {
	return &pathBackoff{now: now, paths: map[string]*pathState{}}
}

// pathKey names the path of an address: its first four components (IP and
// port) and its transport; /tls/sni/X/ws and /wss are one path.
func pathKey(a ma.Multiaddr) string {
	s := a.String()
	if strings.Contains(s, "/p2p-circuit") {
		return s // a relayed path is its whole address
	}
	f := strings.SplitN(s, "/", 6)
	if len(f) < 5 {
		return s
	}
	if isECHAddr(a) {
		return strings.Join(f[:5], "/") + " " + TransportName(s) + " ech" // preferECH asks after it alone
	}
	return strings.Join(f[:5], "/") + " " + TransportName(s)
}

func (b *pathBackoff) failed(a ma.Multiaddr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.paths[pathKey(a)]
	if st == nil {
		st = &pathState{}
		b.paths[pathKey(a)] = st
	}
	st.fails++
	d := PathBackoffBase << min(st.fails-1, 20)
	if d > PathBackoffMax || d <= 0 {
		d = PathBackoffMax
	}
	st.until = b.now().Add(d)
}

func (b *pathBackoff) succeeded(a ma.Multiaddr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.paths, pathKey(a))
}

// waiting reports whether a's path is backing off now.
func (b *pathBackoff) waiting(a ma.Multiaddr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.paths[pathKey(a)]
	return st != nil && b.now().Before(st.until)
}

// filter drops the addresses whose path is backing off, unless that would
// drop them all.
func (b *pathBackoff) filter(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if !b.waiting(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return addrs
	}
	return out
}

// failures returns how many times in a row a's path failed.
func (b *pathBackoff) failures(a ma.Multiaddr) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.paths[pathKey(a)]; st != nil {
		return st.fails
	}
	return 0
}

// dialTracer hears of every failed dial from the swarm (its metrics
// tracer hook; the node keeps libp2p's Prometheus metrics off). A dial
// cancelled because another path won counts as a failure too: the winner
// is what the next dials should use.
type dialTracer struct{ b *pathBackoff }

var _ swarm.MetricsTracer = dialTracer{}

func (t dialTracer) FailedDialing(a ma.Multiaddr, err, cause error) {
	// An ECH twin counts only its own failures, not a race lost to
	// another path: its backing off lets the plain address (and the
	// server name in the clear) back into the dials (preferECH).
	if isECHAddr(a) && (errors.Is(err, context.Canceled) || errors.Is(cause, context.Canceled)) {
		return
	}
	t.b.failed(a)
}

func (dialTracer) OpenedConnection(network.Direction, crypto.PubKey, network.ConnectionState, ma.Multiaddr) {
}
func (dialTracer) ClosedConnection(network.Direction, time.Duration, network.ConnectionState, ma.Multiaddr) {
}
func (dialTracer) CompletedHandshake(time.Duration, network.ConnectionState, ma.Multiaddr) {}
func (dialTracer) DialCompleted(bool, int, time.Duration)                                  {}
func (dialTracer) DialRankingDelay(time.Duration)                                          {}
func (dialTracer) UpdatedBlackHoleSuccessCounter(string, swarm.BlackHoleState, int, float64) {
}
