package p2p

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestPubSubValidator: three nodes in a line; a message the validator
// rejects reaches nobody, an accepted one reaches everybody across the
// middle node.
func TestPubSubValidator(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	var nodes []*Node
	var topics []*Topic
	for range 3 {
		n := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
		tp, err := n.Join("/test/topic", func(_ context.Context, _ string, data []byte) Verdict {
			if bytes.HasPrefix(data, []byte("bad")) {
				return Reject
			}
			return Accept
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tp.Close() })
		nodes, topics = append(nodes, n), append(topics, tp)
	}
	if _, err := nodes[0].Join("/test/topic", nil); err == nil {
		t.Fatal("joined the same topic twice")
	}
	for i := 1; i < 3; i++ {
		if err := nodes[i].Connect(ctx, nodes[i-1].PeerID(), nodes[i-1].Addrs()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "topic peers", func() bool {
		return len(topics[0].Peers()) == 1 && len(topics[1].Peers()) == 2 && len(topics[2].Peers()) == 1
	})
	if err := topics[0].Publish(ctx, []byte("bad post")); err == nil {
		t.Fatal("published a message our own validator rejects")
	}
	// Mesh forms on the next heartbeat; publish until it arrives.
	got := make(chan TopicMessage, 1)
	go func() {
		m, err := topics[2].Next(ctx)
		if err == nil {
			got <- m
		}
	}()
	for i := 0; ; i++ {
		if err := topics[0].Publish(ctx, []byte{'o', 'k', byte(i)}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if !bytes.HasPrefix(m.Data, []byte("ok")) || m.From != nodes[1].PeerID() || m.Local {
				t.Fatalf("got %q from %s", m.Data, m.From)
			}
			return
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("message never arrived")
		}
	}
}

// TestMeshPeers: three nodes in a line; once each is in its neighbours'
// mesh, one message published at one end reaches the other end as it
// passes (no second try, no wait for gossip); a node that goes away
// leaves its neighbour's mesh, and a closed topic has no mesh.
func TestMeshPeers(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	const name = "/test/mesh"
	var nodes []*Node
	var topics []*Topic
	for range 3 {
		n := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
		tp, err := n.Join(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tp.Close() })
		nodes, topics = append(nodes, n), append(topics, tp)
	}
	if got := nodes[0].MeshPeers(name); len(got) != 0 {
		t.Fatalf("a mesh before any peer: %v", got)
	}
	for i := 1; i < 3; i++ {
		if err := nodes[i].Connect(ctx, nodes[i-1].PeerID(), nodes[i-1].Addrs()); err != nil {
			t.Fatal(err)
		}
	}
	has := func(peers []string, p string) bool {
		for _, q := range peers {
			if q == p {
				return true
			}
		}
		return false
	}
	eventually(t, 10*time.Second, "the meshes", func() bool {
		m1 := nodes[1].MeshPeers(name)
		return has(nodes[0].MeshPeers(name), nodes[1].PeerID()) && len(m1) == 2 &&
			has(m1, nodes[0].PeerID()) && has(m1, nodes[2].PeerID())
	})
	if got := nodes[1].TopicPeers(name); len(got) != 2 {
		t.Fatalf("node 1's topic peers: %v", got)
	}
	if err := topics[0].Publish(ctx, []byte("once")); err != nil {
		t.Fatal(err)
	}
	m, err := topics[2].Next(testCtx(t, 10*time.Second))
	if err != nil || string(m.Data) != "once" {
		t.Fatalf("the far end got %q, %v", m.Data, err)
	}

	nodes[2].Close()
	eventually(t, 10*time.Second, "node 2 out of node 1's mesh", func() bool {
		return !has(nodes[1].MeshPeers(name), nodes[2].PeerID())
	})
	topics[0].Close()
	eventually(t, 10*time.Second, "node 0's mesh gone with its topic", func() bool {
		return len(nodes[0].MeshPeers(name)) == 0
	})
}

// TestTopicBurstKept: a burst of messages that arrives while the reader
// is busy (the messenger stores each in a write transaction) waits for it:
// gossipsub drops what overflows a subscription's buffer (32 by default)
// and never offers it again, so the buffer must hold a burst.
func TestTopicBurstKept(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	const burst = 200
	a := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	b := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	ta, err := a.Join("/test/burst", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ta.Close() })
	var validated atomic.Int32
	tb, err := b.Join("/test/burst", func(_ context.Context, _ string, data []byte) Verdict {
		validated.Add(1)
		return Accept
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	if err := b.Connect(ctx, a.PeerID(), a.Addrs()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "topic peers", func() bool { return len(ta.Peers()) == 1 && len(tb.Peers()) == 1 })
	for i := range burst {
		if err := ta.Publish(ctx, fmt.Appendf(nil, "post %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing read yet: the whole burst has reached b's checks.
	eventually(t, 30*time.Second, "the burst validated at b", func() bool { return validated.Load() >= burst })
	seen := map[string]bool{}
	for len(seen) < burst {
		m, err := tb.Next(ctx)
		if err != nil {
			t.Fatalf("read %d of %d posts of the burst: %v", len(seen), burst, err)
		}
		seen[string(m.Data)] = true
	}
}
