package p2p

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTransports(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, listen, marker string }{
		{"tcp", tcpAddr, "/tcp/"},
		{"quic", quicAddr, "/quic-v1"},
		{"ws", wsAddr, "/ws"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server := newTestNode(t, Config{ListenAddrs: []string{tc.listen}})
			client := newTestNode(t, Config{}) // outbound only
			server.Handle(EchoProtocol, EchoHandler)

			addrs := server.Addrs()
			if len(addrs) == 0 {
				t.Fatal("server has no addrs")
			}
			for _, a := range addrs {
				if !strings.Contains(a, tc.marker) || !strings.HasSuffix(a, "/p2p/"+server.PeerID()) {
					t.Fatalf("addr %q: want %s and /p2p/<id>", a, tc.marker)
				}
			}
			if got := client.Addrs(); len(got) != 0 {
				t.Fatalf("outbound-only client listens on %v", got)
			}

			ctx := testCtx(t, 10*time.Second)
			if err := client.Connect(ctx, server.PeerID(), addrs); err != nil {
				t.Fatalf("Connect: %v", err)
			}
			s, err := client.OpenStream(ctx, server.PeerID(), EchoProtocol)
			if err != nil {
				t.Fatalf("OpenStream: %v", err)
			}
			defer s.Close()
			if s.RemotePeer() != server.PeerID() {
				t.Fatalf("RemotePeer = %s, want %s", s.RemotePeer(), server.PeerID())
			}
			if err := s.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatalf("SetDeadline: %v", err)
			}
			msg := []byte("hello over " + tc.name)
			if _, err := s.Write(msg); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if err := s.CloseWrite(); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
			got, err := io.ReadAll(s)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			if string(got) != string(msg) {
				t.Fatalf("echo = %q, want %q", got, msg)
			}
			if !client.IsConnected(server.PeerID()) || !slices.Contains(client.ConnectedPeers(), server.PeerID()) {
				t.Fatal("client does not report the connection")
			}
			if n := server.gater.peerDials.Load(); n != 0 {
				t.Fatalf("server dialled %d times, want 0", n)
			}
		})
	}
}

func TestOnConnected(t *testing.T) {
	t.Parallel()
	a := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	b := newTestNode(t, Config{})
	gotA := make(chan string, 4)
	gotB := make(chan string, 4)
	a.OnConnected(func(id string) { gotA <- id })
	b.OnConnected(func(id string) {
		// Callbacks may call back into the node.
		if !b.IsConnected(id) {
			t.Errorf("callback ran before the connection was up")
		}
		gotB <- id
	})
	if err := b.Connect(testCtx(t, 10*time.Second), a.PeerID(), a.Addrs()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	for _, c := range []struct {
		ch   chan string
		want string
	}{{gotA, b.PeerID()}, {gotB, a.PeerID()}} {
		select {
		case id := <-c.ch:
			if id != c.want {
				t.Fatalf("OnConnected(%s), want %s", id, c.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OnConnected did not fire")
		}
	}
}

func TestStreamErrors(t *testing.T) {
	t.Parallel()
	a := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	b := newTestNode(t, Config{})
	ctx := testCtx(t, 10*time.Second)

	// No address known and no DHT.
	if _, err := b.OpenStream(ctx, a.PeerID(), EchoProtocol); !errors.Is(err, ErrNoAddrs) {
		t.Fatalf("OpenStream to unknown peer: %v, want ErrNoAddrs", err)
	}
	// FindPeer without DHT.
	if _, err := b.FindPeer(ctx, a.PeerID()); !errors.Is(err, ErrNoDHT) {
		t.Fatalf("FindPeer: %v, want ErrNoDHT", err)
	}
	// Known address, protocol not served.
	b.AddAddrs(a.PeerID(), a.Addrs())
	if _, err := b.OpenStream(ctx, a.PeerID(), "/samizdat/nope/1"); !errors.Is(err, ErrProtocolNotSupported) {
		t.Fatalf("OpenStream unsupported: %v, want ErrProtocolNotSupported", err)
	}
	// Handle, then Unhandle.
	a.Handle(EchoProtocol, EchoHandler)
	s, err := b.OpenStream(ctx, a.PeerID(), EchoProtocol)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	if err := s.Reset(); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	a.Unhandle(EchoProtocol)
	// b still believes (from identify) that a speaks echo, so libp2p may
	// negotiate lazily: the refusal then shows on first use.
	if s, err := b.OpenStream(ctx, a.PeerID(), EchoProtocol); err == nil {
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		if err := EchoRoundTrip(s, []byte("x"), make([]byte, 1)); err == nil {
			t.Fatal("echo worked after Unhandle")
		}
		_ = s.Reset()
	} else if !errors.Is(err, ErrProtocolNotSupported) {
		t.Fatalf("OpenStream after Unhandle: %v, want ErrProtocolNotSupported", err)
	}

	// A peer that is down.
	c := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	cID, cAddrs := c.PeerID(), c.Addrs()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Connect(ctx, cID, cAddrs); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Connect to closed node: %v, want ErrUnreachable", err)
	}
	// A closed node refuses work.
	if err := c.Connect(ctx, a.PeerID(), a.Addrs()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect on closed node: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	n := newTestNode(t, Config{})
	_, other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, third, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 5*time.Second)

	badIDs := []string{"", "not-a-peer-id", "12D3KooW", "QmInvalid!!", n.PeerID()}
	for _, id := range badIDs {
		if err := n.Connect(ctx, id, nil); !errors.Is(err, ErrBadPeerID) {
			t.Errorf("Connect(%q): %v, want ErrBadPeerID", id, err)
		}
		if _, err := n.OpenStream(ctx, id, EchoProtocol); !errors.Is(err, ErrBadPeerID) {
			t.Errorf("OpenStream(%q): %v, want ErrBadPeerID", id, err)
		}
		if n.IsConnected(id) {
			t.Errorf("IsConnected(%q) = true", id)
		}
		n.AddAddrs(id, []string{"/ip4/127.0.0.1/tcp/1"}) // must not panic
	}

	badAddrs := []string{
		"",
		"127.0.0.1:4001",
		"/ip4/999.0.0.1/tcp/1",
		"/ip4/127.0.0.1/tcp/notaport",
		"/p2p/" + other,                     // no transport
		"/ip4/127.0.0.1/tcp/1/p2p/" + third, // someone else's address
		"/dns4/example.com/tcp/443/wss",     // needs DNS
		"/dnsaddr/bootstrap.libp2p.io",      // needs DNS
		"/ip4/192.0.2.1/tcp/4001",           // not loopback (node is loopback-only)
		"/ip6/2001:db8::1/udp/4001/quic-v1", // not loopback
	}
	for _, a := range badAddrs {
		if err := n.Connect(ctx, other, []string{a}); !errors.Is(err, ErrBadAddr) {
			t.Errorf("Connect(%q): %v, want ErrBadAddr", a, err)
		}
		n.AddAddrs(other, []string{a}) // must not panic, must not store
	}
	if got := n.host.Peerstore().Addrs(mustPeer(t, other)); len(got) != 0 {
		t.Errorf("bad addrs were stored: %v", got)
	}
	if err := n.Connect(ctx, other, []string{"/dns4/example.com/tcp/443/wss"}); !errors.Is(err, ErrDNSDisabled) {
		t.Errorf("dns addr: %v, want ErrDNSDisabled too", err)
	}

	for _, p := range []string{"", "samizdat/msg/1"} {
		if _, err := n.OpenStream(ctx, other, p); !errors.Is(err, ErrBadProtocol) {
			t.Errorf("OpenStream protocol %q: %v, want ErrBadProtocol", p, err)
		}
	}

	// New rejects bad configuration before starting anything.
	for name, cfg := range map[string]Config{
		"listen":         {ListenAddrs: []string{"/ip4/127.0.0.1/tcp/x"}},
		"listenDNS":      {ListenAddrs: []string{"/dns4/localhost/tcp/0"}},
		"bootstrapNoID":  {BootstrapPeers: []string{"/ip4/127.0.0.1/tcp/4001"}},
		"bootstrapGarbl": {BootstrapPeers: []string{"garbage"}},
		"loopbackListen": {ListenAddrs: []string{"/ip4/0.0.0.0/tcp/0"}, LoopbackOnly: true},
	} {
		if _, err := New(ctx, cfg); !errors.Is(err, ErrBadAddr) {
			t.Errorf("New(%s): %v, want ErrBadAddr", name, err)
		}
	}
	if _, err := New(ctx, Config{PrivateKey: []byte("junk")}); !errors.Is(err, ErrBadKey) {
		t.Errorf("New(bad key): %v, want ErrBadKey", err)
	}
	if _, err := PeerIDFromKey(nil); !errors.Is(err, ErrBadKey) {
		t.Errorf("PeerIDFromKey(nil): %v, want ErrBadKey", err)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	priv, id, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	got, err := PeerIDFromKey(priv)
	if err != nil || got != id {
		t.Fatalf("PeerIDFromKey = %q, %v; want %q", got, err, id)
	}
	n := newTestNode(t, Config{PrivateKey: priv})
	if n.PeerID() != id {
		t.Fatalf("node id %s, want %s", n.PeerID(), id)
	}
}

// TestSafeDefaults checks that the zero Config turns off everything that
// reaches beyond the machine, and that a node without bootstrap peers dials
// nobody, even with the DHT on.
func TestSafeDefaults(t *testing.T) {
	t.Parallel()
	var zero Config
	if zero.EnableMDNS || zero.EnableNATPortMap || zero.EnableRelayService || zero.EnableDHT || zero.LoopbackOnly {
		t.Fatal("zero Config enables something")
	}
	if len(zero.ListenAddrs) != 0 || len(zero.BootstrapPeers) != 0 {
		t.Fatal("zero Config listens or bootstraps")
	}
	if _, err := New(testCtx(t, 5*time.Second), Config{EnableMDNS: true, LoopbackOnly: true}); !errors.Is(err, ErrMDNSLoopback) {
		t.Fatalf("EnableMDNS with LoopbackOnly: %v, want ErrMDNSLoopback", err)
	}

	// Not loopback-only on purpose: the node itself must not dial out.
	idle, err := New(testCtx(t, 5*time.Second), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	withDHT := newTestNode(t, Config{EnableDHT: true, DHTServer: true, ListenAddrs: []string{tcpAddr}})
	time.Sleep(1500 * time.Millisecond)
	for name, n := range map[string]*Node{"idle": idle, "dht": withDHT} {
		if got := n.gater.peerDials.Load(); got != 0 {
			t.Errorf("%s: %d outbound dials, want 0", name, got)
		}
		if c := n.host.Network().Conns(); len(c) != 0 {
			t.Errorf("%s: %d connections, want 0", name, len(c))
		}
	}
	if a := idle.Addrs(); len(a) != 0 {
		t.Errorf("idle node listens on %v", a)
	}
}

func TestLoopbackOnlyRefusesDial(t *testing.T) {
	t.Parallel()
	n := newTestNode(t, Config{})
	_, id, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Put a non-loopback address straight into the peerstore (as identify
	// or the DHT could): the gater must refuse to dial it.
	n.host.Peerstore().AddAddrs(mustPeer(t, id), mustAddrs(t, "/ip4/192.0.2.1/tcp/4001"), time.Minute)
	err = n.Connect(testCtx(t, 5*time.Second), id, nil)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Connect: %v, want ErrUnreachable", err)
	}
	if n.gater.refused.Load() == 0 {
		t.Fatal("gater did not refuse the non-loopback dial")
	}
}

func TestBootstrapRetry(t *testing.T) {
	t.Parallel()
	priv, id, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Start the bootstrap peer once to learn a free port, then stop it.
	b := newTestNode(t, Config{PrivateKey: priv, ListenAddrs: []string{tcpAddr}})
	addr := b.Addrs()[0]
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	a := newTestNode(t, Config{BootstrapPeers: []string{addr}})
	eventually(t, 10*time.Second, "the first attempt and one retry fail", func() bool { return a.gater.peerDials.Load() >= 2 })

	listen := strings.TrimSuffix(addr, "/p2p/"+id)
	b2 := newTestNode(t, Config{PrivateKey: priv, ListenAddrs: []string{listen}})
	eventually(t, 10*time.Second, "reconnect to restarted bootstrap peer", func() bool {
		return a.IsConnected(b2.PeerID())
	})
	if d := a.gater.peerDials.Load(); d > 8 {
		t.Errorf("%d dials in a few seconds: backoff not working", d)
	}
}
