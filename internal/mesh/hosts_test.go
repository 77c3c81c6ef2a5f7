package mesh

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

func loopbackNode(t *testing.T) *p2p.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := p2p.New(ctx, p2p.Config{LoopbackOnly: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// TestHandToMailboxHost: a carrier that meets one of the recipient's
// mailbox hosts deposits the envelope there (real libp2p nodes on
// loopback, a real mailbox host) and stops carrying it; the recipient then
// fetches it from the host as usual.
func TestHandToMailboxHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hostNode := loopbackNode(t)
	st, err := store.OpenMailboxStore(filepath.Join(t.TempDir(), "mailbox.db"), bytes.Repeat([]byte{7}, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	srv := mailbox.NewServer(mailbox.ServerConfig{Store: st, SweepInterval: -1})
	srv.Register(hostNode)
	t.Cleanup(func() {
		_ = srv.Close()
		_ = st.Close()
	})

	srcNode, carrierNode := loopbackNode(t), loopbackNode(t)
	start := func(n *p2p.Node) *Mesh {
		m, err := New(Config{Transport: n, Depositor: n, SyncInterval: time.Hour, MinSyncInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	src, carrier := start(srcNode), start(carrierNode)
	owner := newKey(t)
	env := randomEnvelope(t, 700)
	if err := src.Offer(mailbox.KeyID(owner), env, []string{hostNode.PeerID()}); err != nil {
		t.Fatal(err)
	}
	if err := carrierNode.Connect(ctx, srcNode.PeerID(), srcNode.Addrs()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the carrier to take the envelope", func() bool { return carrier.Stats().Carried == 1 })
	if err := carrierNode.Connect(ctx, hostNode.PeerID(), hostNode.Addrs()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the carrier to hand it to the host", func() bool {
		s := carrier.Stats()
		return s.HandedToHosts == 1 && s.Carried == 0
	})
	srcNode.AddAddrs(hostNode.PeerID(), hostNode.Addrs())
	s, err := mailbox.OpenSession(ctx, srcNode, hostNode.PeerID(), owner)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, _, err := s.Next(ctx, 10)
	if err != nil || len(items) != 1 || !bytes.Equal(items[0].Envelope, env) {
		t.Fatalf("host holds %d items (err %v), want the carried envelope", len(items), err)
	}
}
