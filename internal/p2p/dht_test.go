package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// dhtNet is A, B, C, D with the DHT on; B is the only bootstrap peer of the
// others. It waits until the servers' routing tables are seeded, and returns
// the nodes in order.
func dhtNet(t *testing.T) (a, b, c, d *Node) {
	t.Helper()
	b = newTestNode(t, Config{EnableDHT: true, DHTServer: true, ListenAddrs: []string{tcpAddr}})
	boot := b.Addrs()
	newPeer := func(server bool) *Node {
		return newTestNode(t, Config{
			EnableDHT: true, DHTServer: server,
			ListenAddrs:    []string{tcpAddr, quicAddr},
			BootstrapPeers: boot,
		})
	}
	// A runs the DHT in auto mode, i.e. as a client (it never learns that it
	// is publicly reachable on loopback), like a node behind NAT: only B,
	// which it is connected to, can tell others where it is.
	a, c, d = newPeer(false), newPeer(true), newPeer(true)
	eventually(t, 10*time.Second, "routing tables", func() bool {
		for _, n := range []*Node{c, d} {
			if b.dht.RoutingTable().Find(n.host.ID()) == "" || n.dht.RoutingTable().Find(b.host.ID()) == "" {
				return false
			}
		}
		return a.IsConnected(b.PeerID()) && a.dht.RoutingTable().Find(b.host.ID()) != ""
	})
	return a, b, c, d
}

func TestDHTFindPeer(t *testing.T) {
	t.Parallel()
	a, _, _, d := dhtNet(t)
	a.Handle(EchoProtocol, EchoHandler)
	// D was configured with B only: whatever it knows of A came through the
	// DHT (this lookup, or its own routing-table maintenance).

	ctx := testCtx(t, 15*time.Second)
	found, err := d.FindPeer(ctx, a.PeerID())
	if err != nil {
		t.Fatalf("FindPeer: %v", err)
	}
	for _, want := range a.Addrs() {
		if !slices.Contains(found, want) {
			t.Errorf("FindPeer = %v, missing %s", found, want)
		}
	}

	s, err := d.OpenStream(ctx, a.PeerID(), EchoProtocol)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("via dht")); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "via dht" {
		t.Fatalf("echo = %q, %v", got, err)
	}

	// An id nobody has.
	_, ghost, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.FindPeer(testCtx(t, 10*time.Second), ghost); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FindPeer(ghost): %v, want ErrNotFound", err)
	}
}

func TestDHTOpenStreamLooksUp(t *testing.T) {
	t.Parallel()
	a, b, _, _ := dhtNet(t)
	a.Handle(EchoProtocol, EchoHandler)
	// E joins late, knows only B, and asks for A straight away.
	e := newTestNode(t, Config{EnableDHT: true, BootstrapPeers: b.Addrs()})
	eventually(t, 10*time.Second, "bootstrap", func() bool { return e.IsConnected(b.PeerID()) })
	s, err := e.OpenStream(testCtx(t, 15*time.Second), a.PeerID(), EchoProtocol)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if err := EchoRoundTrip(s, []byte("ping"), make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
}

func card(version uint64, body string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, version), body...)
}

func TestDHTCards(t *testing.T) {
	t.Parallel()
	a, _, c, d := dhtNet(t)
	ctx := testCtx(t, 20*time.Second)
	key := CardNamespace + "alice"

	if err := a.PutValue(ctx, key, card(1, "old")); err != nil {
		t.Fatalf("PutValue v1: %v", err)
	}
	if err := c.PutValue(ctx, key, card(2, "new")); err != nil {
		t.Fatalf("PutValue v2: %v", err)
	}
	got, err := d.GetValue(ctx, key)
	if err != nil {
		t.Fatalf("GetValue: %v", err)
	}
	if !bytes.Equal(got, card(2, "new")) {
		t.Fatalf("GetValue = %q, want version 2", got)
	}

	if _, err := d.GetValue(testCtx(t, 10*time.Second), CardNamespace+"nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetValue(missing): %v, want ErrNotFound", err)
	}
	for _, k := range []string{"", "/pk/x", "/ipns/x", CardNamespace, "samizdat-card/x"} {
		if err := a.PutValue(ctx, k, card(1, "x")); !errors.Is(err, ErrBadRecordKey) {
			t.Errorf("PutValue(%q): %v, want ErrBadRecordKey", k, err)
		}
		if _, err := a.GetValue(ctx, k); !errors.Is(err, ErrBadRecordKey) {
			t.Errorf("GetValue(%q): %v, want ErrBadRecordKey", k, err)
		}
	}
	for _, v := range [][]byte{nil, []byte("short"), make([]byte, MaxCardSize+1)} {
		if err := a.PutValue(ctx, key, v); !errors.Is(err, ErrBadRecord) {
			t.Errorf("PutValue(%d bytes): %v, want ErrBadRecord", len(v), err)
		}
	}
}

func TestCardValidator(t *testing.T) {
	t.Parallel()
	var v cardValidator
	key := CardNamespace + "x"
	for _, tc := range []struct {
		name  string
		value []byte
		ok    bool
	}{
		{"minimal", card(0, ""), true},
		{"max", append(card(1, ""), make([]byte, MaxCardSize-CardVersionSize)...), true},
		{"tooBig", append(card(1, ""), make([]byte, MaxCardSize-CardVersionSize+1)...), false},
		{"noVersion", []byte{1, 2, 3}, false},
	} {
		if err := v.Validate(key, tc.value); (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if err := v.Validate("/other/x", card(1, "")); !errors.Is(err, ErrBadRecordKey) {
		t.Errorf("Validate(other namespace) = %v", err)
	}

	vals := [][]byte{card(3, "a"), card(7, "b"), []byte("bad"), card(7, "c"), card(5, "d")}
	i, err := v.Select(key, vals)
	if err != nil || i != 3 {
		t.Fatalf("Select = %d, %v; want 3 (highest version, greatest bytes)", i, err)
	}
	// Order must not matter.
	rev := slices.Clone(vals)
	slices.Reverse(rev)
	if j, _ := v.Select(key, rev); !bytes.Equal(rev[j], vals[i]) {
		t.Fatalf("Select is order dependent")
	}
	if _, err := v.Select(key, [][]byte{[]byte("bad")}); err == nil {
		t.Fatal("Select of only bad values succeeded")
	}
}

func TestFindPeerBadInput(t *testing.T) {
	t.Parallel()
	n := newTestNode(t, Config{EnableDHT: true})
	ctx := testCtx(t, 5*time.Second)
	if _, err := n.FindPeer(ctx, "garbage"); !errors.Is(err, ErrBadPeerID) {
		t.Fatalf("FindPeer(garbage): %v", err)
	}
	if _, err := n.FindPeer(ctx, n.PeerID()); !errors.Is(err, ErrBadPeerID) {
		t.Fatalf("FindPeer(self): %v", err)
	}
	_, id, _ := GenerateKey()
	// Empty routing table: fails fast, no panic.
	if _, err := n.FindPeer(ctx, id); err == nil || strings.Contains(err.Error(), "panic") {
		t.Fatalf("FindPeer with empty table: %v", err)
	}
}

// TestProvideFindProviders: C and D announce a service; A (a DHT client)
// finds both, with dialable addresses, and never itself; an unknown
// service has no providers.
func TestProvideFindProviders(t *testing.T) {
	t.Parallel()
	a, _, c, d := dhtNet(t)
	ctx := testCtx(t, 20*time.Second)
	for _, n := range []*Node{c, d, a} {
		if err := n.Provide(ctx, "mailbox/1"); err != nil {
			t.Fatalf("Provide: %v", err)
		}
	}
	got, err := a.FindProviders(ctx, "mailbox/1", 5)
	if err != nil {
		t.Fatalf("FindProviders: %v", err)
	}
	ids := map[string]bool{}
	for _, p := range got {
		ids[p.PeerID] = true
		if len(p.Addrs) == 0 || !strings.HasSuffix(p.Addrs[0], "/p2p/"+p.PeerID) {
			t.Errorf("provider %s addrs %v", p.PeerID, p.Addrs)
		}
	}
	if !ids[c.PeerID()] || !ids[d.PeerID()] || ids[a.PeerID()] || len(got) != 2 {
		t.Fatalf("providers %v, want C and D only", got)
	}
	if got, err := a.FindProviders(ctx, "mailbox/1", 1); err != nil || len(got) != 1 {
		t.Fatalf("limit 1: %v, %v", got, err)
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := a.FindProviders(short, "nobody/1", 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	var off *Node = newTestNode(t, Config{})
	if err := off.Provide(ctx, "x"); !errors.Is(err, ErrNoDHT) {
		t.Fatalf("Provide without DHT: %v", err)
	}
}
