package media

import (
	"bufio"
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// loopNodes are n real libp2p nodes on loopback, each knowing the
// addresses of the others.
func loopNodes(t *testing.T, n int) []*p2p.Node {
	t.Helper()
	ctx := context.Background()
	var out []*p2p.Node
	for range n {
		nd, err := p2p.New(ctx, p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		out = append(out, nd)
	}
	for _, a := range out {
		for _, b := range out {
			if a != b {
				addr := b.Addrs()[0]
				a.AddAddrs(b.PeerID(), []string{addr[:strings.Index(addr, "/p2p/")]})
			}
		}
	}
	return out
}

// TestFetchFromV1Peer: a node that serves only /samizdat/blob/1 (an older
// version) is still a source, as a seed and as a swarm peer (it answers
// no have query: it is asked for chunks directly).
func TestFetchFromV1Peer(t *testing.T) {
	data := make([]byte, 3*ChunkSize+77)
	rand.Read(data)
	src, m := seal(t, data)
	nodes := loopNodes(t, 2)
	old, fetcher := nodes[0], nodes[1]
	old.Handle(ProtocolV1, func(s p2p.Stream) { Serve(src, s) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, asPeer := range []bool{false, true} {
		ch, err := OpenChunks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		seeds, peers := []string{old.PeerID()}, []string(nil)
		if asPeer {
			seeds, peers = nil, seeds
		}
		if err := FetchSwarm(ctx, fetcher, ch, m, seeds, peers, nil); err != nil {
			t.Fatalf("fetch from a v1 node (as a swarm peer: %v): %v", asPeer, err)
		}
		if _, missing, err := Missing(ch, m); err != nil || len(missing) != 0 {
			t.Fatalf("missing %v (%v)", missing, err)
		}
	}
}

// TestV1ClientNeverBusy: a sender's seed budget answers a second member
// busy on /samizdat/blob/2, but an older member asking on
// /samizdat/blob/1 (which drops a source that says busy) gets the chunk.
func TestV1ClientNeverBusy(t *testing.T) {
	nodes := loopNodes(t, 3)
	sender, first, second := nodes[0], nodes[1], nodes[2]
	key := make([]byte, store.KeySize)
	rand.Read(key)
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(Config{Dir: t.TempDir(), Store: st, Transport: sender})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	path, _ := randomFile(t, 2*ChunkSize)
	m, err := svc.Prepare(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.AddOutgoingGroup(ctx, "00cc00cc00cc00cc", "0123", m); err != nil {
		t.Fatal(err)
	}
	hs, err := LoadIndex(svc.Chunks(), m)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(n *p2p.Node, proto string) byte {
		t.Helper()
		s, err := n.OpenStream(ctx, sender.PeerID(), proto)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Write(hs[0][:]); err != nil {
			t.Fatal(err)
		}
		st, err := bufio.NewReader(s).ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := ask(first, Protocol); st != statusOK {
		t.Fatalf("the first member: status %d", st)
	}
	if st := ask(second, Protocol); st != statusBusy {
		t.Fatalf("the second member on v2: status %d, want busy (the budget is not in force)", st)
	}
	if st := ask(second, ProtocolV1); st != statusOK {
		t.Fatalf("the second member on v1: status %d, want the chunk", st)
	}
}
