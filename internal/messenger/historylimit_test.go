package messenger

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// TestHistoryFetchBoundedBytes: a topic peer answers a history request
// with 100 frames of the largest size (25 MiB); the asker stops reading at
// historyMaxBytes instead of taking it all in before checking anything.
func TestHistoryFetchBoundedBytes(t *testing.T) {
	alice := newNode(t, "alice")
	evil, err := p2p.New(context.Background(), p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evil.Close() })
	junk := bytes.Repeat([]byte{0xaa}, wire.MaxEnvelopeSize)
	evil.Handle(ProtocolHistory, func(s p2p.Stream) {
		defer s.Close()
		if _, err := wire.ReadFrame(s); err != nil {
			return
		}
		for range 100 {
			if wire.WriteFrame(s, junk) != nil {
				return
			}
		}
	})
	items, err := alice.m.fetchHistory(context.Background(), seedPeer{evil.PeerID(), evil.Addrs()},
		&wirepb.HistoryRequest{Topic: "/samizdat/grp/1/00", Limit: historyPageSize})
	size := 0
	for _, it := range items {
		size += len(it)
	}
	if size > historyMaxBytes || !errors.Is(err, errHistoryTooLarge) {
		t.Fatalf("read %d items, %d bytes (bound %d), err %v", len(items), size, historyMaxBytes, err)
	}
}

// TestHistoryRateLimitedPerPeer: one peer asking for history again and
// again is answered historyBurst times and then refused (its stream
// reset) until its bucket refills; another peer is still answered.
func TestHistoryRateLimitedPerPeer(t *testing.T) {
	alice := newNode(t, "alice")
	now := time.Unix(1_800_000_000, 0)
	rate := &alice.m.bc().rate
	rate.mu.Lock()
	rate.now = func() time.Time { return now } // the clock stands still: no refill
	rate.mu.Unlock()
	ask := func(c *p2p.Node) bool {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Connect(ctx, alice.n.PeerID(), alice.n.Addrs()); err != nil {
			t.Fatal(err)
		}
		s, err := c.OpenStream(ctx, alice.n.PeerID(), ProtocolHistory)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := wire.WriteFrame(s, wire.Marshal(&wirepb.HistoryRequest{Version: wire.Version, Topic: "/samizdat/grp/1/00", Limit: 1})); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseWrite()
		_, err = wire.ReadFrame(s)
		return errors.Is(err, io.EOF) // served (an unknown topic: no items); a refusal resets
	}
	mallory := startClient(t)
	served := 0
	for range 3 * historyBurst {
		if ask(mallory) {
			served++
		}
	}
	if served != historyBurst {
		t.Fatalf("one peer was served %d of %d requests, want %d", served, 3*historyBurst, historyBurst)
	}
	if !ask(startClient(t)) {
		t.Fatal("another peer was refused")
	}
	rate.mu.Lock()
	now = now.Add(5 * time.Second) // five tokens back
	rate.mu.Unlock()
	served = 0
	for range 10 {
		if ask(mallory) {
			served++
		}
	}
	if served != 5 {
		t.Fatalf("after 5 s the peer was served %d times, want 5", served)
	}
}

// TestHistoryRatePeersBounded: the per-peer state stays bounded however
// many peer ids ask.
func TestHistoryRatePeersBounded(t *testing.T) {
	var pr peerRate
	now := time.Unix(1_800_000_000, 0)
	pr.now = func() time.Time { return now }
	for i := range 10 * historyPeersMax {
		pr.allow(string(rune(i)) + "peer")
	}
	if n := len(pr.peers); n > historyPeersMax {
		t.Fatalf("%d peers tracked", n)
	}
}
