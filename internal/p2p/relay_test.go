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
