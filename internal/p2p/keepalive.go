package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
)

// An idle connection's cost (issue 18: an idle phone's data and radio
// wake-ups). go-yamux's defaults send, on every connection and from both
// ends, a keepalive ping every 30 s of silence and an RTT ping every 30 s
// whatever the traffic: with ~50 contacts connected that was the largest
// share of what an idle node sent (docs/BENCHMARKS.md, "Idle cost").
const (
	// muxKeepAlive is how long a connection may stay silent before yamux
	// pings the peer: it keeps NAT and load-balancer bindings alive
	// (those of TCP seldom expire before 4–5 minutes; RFC 5382 asks for
	// 2 h) and finds a dead peer. Messages do not wait for it: a send
	// over a dead connection times out (messenger's StreamTimeout) and
	// goes to the mailboxes.
	muxKeepAlive = 3 * time.Minute
	// muxMeasureRTT is how often yamux measures the round trip (it does
	// once at the start of each connection); the RTT only tunes receive
	// windows of streams that carry bulk data.
	muxMeasureRTT = 30 * time.Minute
)

// muxer is yamux as libp2p configures it, with the idle timers above.
var muxer = func() *yamux.Transport {
	t := *yamux.DefaultTransport
	t.KeepAliveInterval = muxKeepAlive
	t.MeasureRTTInterval = muxMeasureRTT
	return &t
}()
