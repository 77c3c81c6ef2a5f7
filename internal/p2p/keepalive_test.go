package p2p

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
)

// TestMuxerIdleTimers: an idle connection is pinged after minutes of
// silence, not every 30 s (yamux's default keepalive and RTT timers were
// most of an idle node's bytes), and nothing else of libp2p's yamux
// configuration changes.
func TestMuxerIdleTimers(t *testing.T) {
	if muxer.KeepAliveInterval < 3*time.Minute || !muxer.EnableKeepAlive {
		t.Errorf("keepalive every %v (enabled %v), want on, every ≥ 3 min", muxer.KeepAliveInterval, muxer.EnableKeepAlive)
	}
	if muxer.MeasureRTTInterval < 30*time.Minute {
		t.Errorf("RTT measured every %v, want ≥ 30 min", muxer.MeasureRTTInterval)
	}
	want := *yamux.DefaultTransport
	want.KeepAliveInterval, want.MeasureRTTInterval = muxer.KeepAliveInterval, muxer.MeasureRTTInterval
	if *muxer != want {
		t.Errorf("muxer differs from libp2p's yamux beyond the idle timers")
	}
}
