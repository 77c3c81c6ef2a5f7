package p2p

import (
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOpenEphemeral: streams opened with OpenEphemeral reach the server
// under a new peer id each time, never the node's; through a circuit the
// server sees the relay's address, not the client's; the throwaway host
// is gone once the stream is closed, and node Close ends those still open.
func TestOpenEphemeral(t *testing.T) {
	relay := newTestNode(t, Config{ListenAddrs: []string{"/ip4/127.0.0.4/tcp/0"}, EnableRelayService: true})
	server := newTestNode(t, Config{ListenAddrs: []string{"/ip4/127.0.0.5/tcp/0"}})
	client := newTestNode(t, Config{ListenAddrs: []string{"/ip4/127.0.0.2/tcp/0"}})
	type seen struct{ peer, addr string }
	var mu sync.Mutex
	var got []seen
	server.Handle(EchoProtocol, func(s Stream) {
		mu.Lock()
		got = append(got, seen{s.RemotePeer(), s.(interface{ RemoteAddr() string }).RemoteAddr()})
		mu.Unlock()
		EchoHandler(s)
	})
	ctx := testCtx(t, 30*time.Second)
	echo := func(addrs []string) {
		t.Helper()
		s, err := client.OpenEphemeral(ctx, server.PeerID(), addrs, EchoProtocol)
		if err != nil {
			t.Fatalf("OpenEphemeral: %v", err)
		}
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.Write([]byte("who am i")); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseWrite()
		if b, err := io.ReadAll(s); err != nil || string(b) != "who am i" {
			t.Fatalf("echo = %q, %v", b, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	echo(server.Addrs())
	echo(server.Addrs())
	rsvp, err := server.ReserveRelay(ctx, relay.Addrs()[0])
	if err != nil {
		t.Fatalf("ReserveRelay: %v", err)
	}
	circuit := CircuitAddrs(append(server.Addrs(), rsvp.Addrs...))
	if len(circuit) != len(rsvp.Addrs) {
		t.Fatalf("CircuitAddrs kept %v", circuit)
	}
	echo(circuit)

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("server saw %d streams, want 3", len(got))
	}
	ids := map[string]bool{}
	for i, g := range got {
		if g.peer == client.PeerID() {
			t.Errorf("stream %d came from the client's own peer id", i)
		}
		ids[g.peer] = true
		if strings.Contains(g.addr, "127.0.0.2") {
			t.Errorf("stream %d: the server saw the client's address %s", i, g.addr)
		}
	}
	if len(ids) != 3 {
		t.Errorf("%d distinct peer ids over 3 streams, want a fresh one each", len(ids))
	}
	if !strings.Contains(got[2].addr, "127.0.0.4") || !strings.Contains(got[2].addr, "/p2p-circuit") {
		t.Errorf("through the circuit the server saw %q, want the relay's address", got[2].addr)
	}
	for _, g := range got {
		eventually(t, 10*time.Second, "the throwaway host gone", func() bool { return !server.IsConnected(g.peer) })
	}
	if client.IsConnected(server.PeerID()) {
		t.Error("the client's own node connected to the server")
	}
	// A stream left open is ended by the node's Close (goleak checks the rest).
	if _, err := client.OpenEphemeral(ctx, server.PeerID(), server.Addrs(), EchoProtocol); err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.OpenEphemeral(ctx, server.PeerID(), server.Addrs(), EchoProtocol); err == nil {
		t.Error("OpenEphemeral on a closed node")
	}
}
