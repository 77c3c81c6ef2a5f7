package p2p

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const (
	tcpAddr  = "/ip4/127.0.0.1/tcp/0"
	quicAddr = "/ip4/127.0.0.1/udp/0/quic-v1"
	wsAddr   = "/ip4/127.0.0.1/tcp/0/ws"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestNode starts a loopback-only node closed at the end of the test.
func newTestNode(tb testing.TB, cfg Config) *Node {
	tb.Helper()
	cfg.LoopbackOnly = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return n
}

func testCtx(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
