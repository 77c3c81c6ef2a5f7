package p2p

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// A node that listens nowhere is reached through a circuit relay: it books
// a slot, and another node that listens nowhere either dials the circuit
// address and opens a stream.
func TestCircuitRelay(t *testing.T) {
	relay := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}, EnableRelayService: true})
	a := newTestNode(t, Config{})
	b := newTestNode(t, Config{})
	a.Handle(EchoProtocol, EchoHandler)
	ctx := testCtx(t, 20*time.Second)

	// Before a reservation the relay refuses to connect anyone to a (c
	// tries, so that b has no dial backoff for a).
	c := newTestNode(t, Config{})
	bad := relay.Addrs()[0] + "/p2p-circuit/p2p/" + a.PeerID()
	if err := c.Connect(ctx, a.PeerID(), []string{bad}); err == nil {
		t.Fatal("connected through the relay without a reservation")
	}

	rsvp, err := a.ReserveRelay(ctx, relay.Addrs()[0])
	if err != nil {
		t.Fatalf("ReserveRelay: %v", err)
	}
	if len(rsvp.Addrs) == 0 || time.Until(rsvp.Expires) < time.Minute {
		t.Fatalf("reservation %+v", rsvp)
	}
	for _, ad := range rsvp.Addrs {
		if !strings.Contains(ad, "/p2p/"+relay.PeerID()+"/p2p-circuit/p2p/"+a.PeerID()) {
			t.Fatalf("circuit addr %q", ad)
		}
	}
	if err := b.Connect(ctx, a.PeerID(), rsvp.Addrs); err != nil {
		t.Fatalf("Connect through relay: %v", err)
	}
	s, err := b.OpenStream(ctx, a.PeerID(), EchoProtocol)
	if err != nil {
		t.Fatalf("OpenStream through relay: %v", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("hello through the relay")
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

func TestReserveRelayErrors(t *testing.T) {
	noRelay := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	a := newTestNode(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	for _, addr := range []string{"", "/ip4/127.0.0.1/tcp/1", "/ip4/10.0.0.1/tcp/1/p2p/" + noRelay.PeerID()} {
		if _, err := a.ReserveRelay(ctx, addr); !errors.Is(err, ErrBadAddr) {
			t.Errorf("ReserveRelay(%q) = %v, want ErrBadAddr", addr, err)
		}
	}
	// A node without the relay service refuses the reservation.
	if _, err := a.ReserveRelay(ctx, noRelay.Addrs()[0]); err == nil {
		t.Error("reserved on a node without the relay service")
	}
}

// A node that knows it is behind NAT books a slot on its static relay by
// itself and lists the relayed address in Addrs; another node that has
// only that address reaches it.
func TestAutoRelay(t *testing.T) {
	relay := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}, EnableRelayService: true})
	a := newTestNode(t, Config{StaticRelays: relay.Addrs(), ForcePrivate: true, EnableHolePunching: true})
	a.Handle(EchoProtocol, EchoHandler)
	var circuit []string
	eventually(t, 20*time.Second, "a relayed address", func() bool {
		circuit = nil
		for _, ad := range a.Addrs() {
			if strings.Contains(ad, "/p2p/"+relay.PeerID()+"/p2p-circuit/p2p/"+a.PeerID()) {
				circuit = append(circuit, ad)
			}
		}
		return len(circuit) > 0
	})
	b := newTestNode(t, Config{})
	ctx := testCtx(t, 20*time.Second)
	if err := b.Connect(ctx, a.PeerID(), circuit); err != nil {
		t.Fatalf("Connect through the booked relay: %v", err)
	}
	s, err := b.OpenStream(ctx, a.PeerID(), EchoProtocol)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write([]byte("behind NAT")); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	if got, err := io.ReadAll(s); err != nil || string(got) != "behind NAT" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	// A bad static relay is skipped, not fatal.
	c := newTestNode(t, Config{StaticRelays: []string{"/ip4/127.0.0.1/tcp/1", "/ip4/10.1.1.1/tcp/1/p2p/" + relay.PeerID()}})
	if got := c.staticRelays(); len(got) != 0 {
		t.Fatalf("bad static relays kept: %v", got)
	}
}

// Static relays can be given after start; a relay taken away loses its
// slot and its addresses.
func TestSetStaticRelays(t *testing.T) {
	relay := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}, EnableRelayService: true})
	a := newTestNode(t, Config{ForcePrivate: true})
	hasCircuit := func() bool {
		for _, ad := range a.Addrs() {
			if strings.Contains(ad, "/p2p-circuit/") {
				return true
			}
		}
		return false
	}
	if err := a.SetStaticRelays([]string{"/ip4/127.0.0.1/tcp/1"}); !errors.Is(err, ErrBadAddr) {
		t.Fatalf("SetStaticRelays without /p2p/: %v", err)
	}
	if err := a.SetStaticRelays(relay.Addrs()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a slot", hasCircuit)
	if err := a.SetStaticRelays(nil); err != nil {
		t.Fatal(err)
	}
	if hasCircuit() {
		t.Fatal("relayed address kept after the relay was removed")
	}
}

// A relay that restarts loses its reservations: the node books again.
func TestRelaySlotRebooked(t *testing.T) {
	priv, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	relay := newTestNode(t, Config{PrivateKey: priv, ListenAddrs: []string{tcpAddr}, EnableRelayService: true})
	addr := relay.Addrs()[0]
	a := newTestNode(t, Config{StaticRelays: []string{addr}, ForcePrivate: true})
	a.Handle(EchoProtocol, EchoHandler)
	circuit := func() []string {
		var out []string
		for _, ad := range a.Addrs() {
			if strings.Contains(ad, "/p2p-circuit/") {
				out = append(out, ad)
			}
		}
		return out
	}
	eventually(t, 20*time.Second, "a slot", func() bool { return len(circuit()) > 0 })
	listen := strings.TrimSuffix(addr, "/p2p/"+relay.PeerID())
	relay.Close()
	eventually(t, 20*time.Second, "the slot dropped", func() bool { return len(circuit()) == 0 })
	relay2 := newTestNode(t, Config{PrivateKey: priv, ListenAddrs: []string{listen}, EnableRelayService: true})
	eventually(t, 30*time.Second, "a slot on the restarted relay", func() bool { return len(circuit()) > 0 })
	b := newTestNode(t, Config{})
	ctx := testCtx(t, 20*time.Second)
	if err := b.Connect(ctx, a.PeerID(), circuit()); err != nil {
		t.Fatalf("Connect through the restarted relay %s: %v", relay2.PeerID(), err)
	}
}
