package mesh

import (
	"context"
	"crypto/ed25519"
	"math/rand/v2"
	"testing"
	"time"

	"fmt"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// The flooding bound: 30 nodes in one LAN, 1,000 messages between random
// pairs. Every message reaches its recipient exactly once, and no node ever
// holds more than its configured bounds. Bytes per delivered message go to
// docs/BENCHMARKS.md (run with -v).
//
// TestFloodBound runs the nodes on the in-memory link layer (fast enough
// for the race detector); TestFloodBoundLoopback on real libp2p hosts on
// loopback, in this process (30 processes are too heavy for the 2-core CI
// machine; under -race the 435 handshakes alone take minutes, so it is
// skipped there).
func TestFloodBound(t *testing.T) {
	net := newMemNet(t)
	trs := make([]Transport, floodNodes)
	for i := range trs {
		trs[i] = net.node(fmt.Sprint("n", i))
	}
	runFlood(t, trs, func(i, j int) { net.link(fmt.Sprint("n", i), fmt.Sprint("n", j)) })
}

func TestFloodBoundLoopback(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("30 libp2p hosts in one process: not in -short nor under -race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := make([]*p2p.Node, floodNodes)
	trs := make([]Transport, floodNodes)
	for i := range nodes {
		n, err := p2p.New(ctx, p2p.Config{LoopbackOnly: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nodes[i], trs[i] = n, n
	}
	runFlood(t, trs, func(i, j int) {
		if err := nodes[i].Connect(ctx, nodes[j].PeerID(), nodes[j].Addrs()); err != nil {
			t.Fatal(err)
		}
	})
}

const floodNodes = 30

func runFlood(t *testing.T, trs []Transport, link func(i, j int)) {
	const (
		nodes    = floodNodes
		envSize  = 1024 // a padded envelope of the smallest bucket
		maxItems = 300
		maxBytes = 300 * envSize
	)
	// Under the race detector (CI) everything runs ~10× slower: 300
	// messages there keep the run near 30 s; the full 1,000 run without it.
	messages := 1000
	if raceEnabled {
		messages = 300
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type member struct {
		mesh *Mesh
		key  ed25519.PrivateKey
		in   *inbox
	}
	ms := make([]*member, nodes)
	for i := range ms {
		m, err := New(Config{Transport: trs[i], MaxItems: maxItems, MaxBytes: maxBytes,
			SyncInterval: time.Second, MinSyncInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		mem := &member{mesh: m, key: newKey(t), in: &inbox{}}
		m.Own(mem.key, mem.in.deliver)
		ms[i] = mem
		t.Cleanup(func() { _ = m.Close() })
	}
	for _, mem := range ms {
		mem.mesh.Start()
	}
	// One LAN: everyone in range of everyone.
	for i := range ms {
		for j := 0; j < i; j++ {
			link(i, j)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type sent struct {
		to  int
		env []byte
	}
	all := make([]sent, messages)
	for i := range all {
		from, to := rng.IntN(nodes), rng.IntN(nodes-1)
		if to >= from {
			to++
		}
		env := randomEnvelope(t, envSize)
		all[i] = sent{to: to, env: env}
		if err := ms[from].mesh.Offer(mailbox.KeyID(ms[to].key), env, nil); err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
	}
	start := time.Now()
	delivered := func() int {
		n := 0
		for _, s := range all {
			if ms[s.to].in.count(s.env) > 0 {
				n++
			}
		}
		return n
	}
	peak := 0
	for delivered() < messages {
		for i, mem := range ms {
			s := mem.mesh.Stats()
			if s.Carried+s.Own > maxItems || s.CarriedBytes > maxBytes {
				t.Fatalf("node %d holds %d envelopes, %d bytes: bounds %d, %d", i, s.Carried+s.Own, s.CarriedBytes, maxItems, maxBytes)
			}
			peak = max(peak, s.Carried+s.Own)
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d messages delivered", delivered(), messages)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	for i, s := range all {
		if n := ms[s.to].in.count(s.env); n != 1 {
			t.Fatalf("message %d delivered %d times", i, n)
		}
	}
	var sentBytes, items, syncs, maxSent, maxRecv, dups int64
	distinct := int64(2 * messages) // an envelope and its receipt per message
	for i, mem := range ms {
		s := mem.mesh.Stats()
		// Dedupe: a node takes each envelope and each receipt at most once
		// (fewer when its storage is full; an envelope whose receipt
		// reached it while on its way is one more). Measured
		// (docs/BENCHMARKS.md): the most any node took was 0.83–0.94× the
		// distinct items, with or without -race, and 0–17 items in a run
		// reached a node that held or dropped them (24 once, at load ~20:
		// concurrent syncs race more when the machine is busy, so the
		// duplicate bound is 10 % of the distinct items, not 2 %; the old
		// behaviour sent ~5× the distinct items again). Before the fixes of
		// issue 13 (owners sent what they held at every sync, two
		// neighbours pushing a node the same items in concurrent syncs) a
		// node took up to 1.75×: these bounds break on that.
		if s.ItemsReceived > distinct*11/10 {
			t.Errorf("node %d received %d items for %d distinct", i, s.ItemsReceived, distinct)
		}
		maxRecv = max(maxRecv, s.ItemsReceived)
		dups += mem.mesh.itemsDup.Load()
		sentBytes += s.BytesSent
		items += s.ItemsReceived
		syncs += s.Syncs
		maxSent = max(maxSent, s.BytesSent)
	}
	if dups > max(20, distinct/10) {
		t.Errorf("%d items were sent to nodes that held or dropped them (%d distinct items)", dups, distinct)
	}
	t.Logf("most items received by one node: %d = %.2f× the distinct items; average %.2f×; %d duplicates in all",
		maxRecv, float64(maxRecv)/float64(distinct), float64(items)/float64(int64(len(ms))*distinct), dups)
	t.Logf("%d nodes, %d messages of %d bytes, bounds %d envelopes / %d bytes: all delivered once in %v; peak held %d; "+
		"%d bytes sent in all = %.0f bytes per delivered message (%.1f× the envelope), most by one node %d; %d items moved, %d syncs",
		nodes, messages, envSize, maxItems, maxBytes, took.Round(time.Millisecond), peak,
		sentBytes, float64(sentBytes)/float64(messages), float64(sentBytes)/float64(messages)/envSize, maxSent, items, syncs/2)
}
