package p2p

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

func TestPathBackoffDoubles(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newPathBackoff(func() time.Time { return now })
	quic := mustAddrs(t, "/ip4/198.18.0.1/udp/4001/quic-v1")[0]
	wss := mustAddrs(t, "/ip4/198.18.0.1/tcp/443/tls/sni/x.test/ws")[0]
	wssConn := mustAddrs(t, "/ip4/198.18.0.1/tcp/443/wss")[0]
	want := PathBackoffBase
	for i := 1; i <= 12; i++ {
		b.failed(quic)
		if !b.waiting(quic) || b.failures(quic) != i {
			t.Fatalf("after %d failures: waiting %v, failures %d", i, b.waiting(quic), b.failures(quic))
		}
		now = now.Add(want - time.Millisecond)
		if !b.waiting(quic) {
			t.Fatalf("after %d failures: free before %v", i, want)
		}
		now = now.Add(time.Millisecond)
		if b.waiting(quic) {
			t.Fatalf("after %d failures: still waiting after %v", i, want)
		}
		want = min(2*want, PathBackoffMax)
	}
	if want != PathBackoffMax {
		t.Fatalf("backoff never reached its cap: %v", want)
	}
	// A blocked path is left out while another remains...
	b.failed(quic)
	if got := b.filter(append(mustAddrs(t, "/ip4/198.18.0.1/tcp/4001"), quic, wss)); len(got) != 2 || slices.ContainsFunc(got, quic.Equal) {
		t.Fatalf("filter kept %v", got)
	}
	// ...but when all are backing off, all are tried.
	b.failed(wss)
	if got := b.filter([]ma.Multiaddr{quic, wss}); len(got) != 2 {
		t.Fatalf("filter with every path backing off: %v", got)
	}
	// The connection's address (/wss) forgives the dialled one (/tls/sni/…/ws).
	b.succeeded(wssConn)
	if b.waiting(wss) || b.failures(wss) != 0 {
		t.Fatal("a path that connected is still backing off")
	}
}

// A node dialling a peer through a dead path and a live one leaves the
// dead one out of its next dials: it fails once, not at every dial.
func TestPathBackoffSkipsFailedPath(t *testing.T) {
	b := newTestNode(t, Config{ListenAddrs: []string{wssAddr}})
	var live string
	for _, a := range b.Addrs() {
		if TransportName(a) == "wss" {
			live = a
		}
	}
	// A TCP port nobody listens on: refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Of the same transport as the live one, so that the memory of what
	// worked does not put it last: only the backoff leaves it out.
	dead := "/ip4/127.0.0.1/tcp/" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port) + "/tls/sni/x.test/ws/p2p/" + b.PeerID()
	l.Close()
	a := newTestNode(t, Config{})
	deadMA := mustAddrs(t, dead[:len(dead)-len("/p2p/"+b.PeerID())])[0]
	for i := range 3 {
		if err := a.Connect(testCtx(t, 10*time.Second), b.PeerID(), []string{dead, live}); err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		if i == 0 && a.tmem.paths.failures(deadMA) == 0 {
			// The live path may win before the dead one is tried; make
			// the dead one fail on its own.
			_ = a.host.Network().ClosePeer(b.host.ID())
			a.host.Network().Peerstore().ClearAddrs(b.host.ID())
			if err := a.Connect(testCtx(t, 10*time.Second), b.PeerID(), []string{dead}); err == nil {
				t.Fatal("connected through a closed port")
			}
		}
		if n := a.tmem.paths.failures(deadMA); n != 1 {
			t.Fatalf("dial %d: dead path failed %d times, want once and then left out", i, n)
		}
		_ = a.host.Network().ClosePeer(b.host.ID())
		a.host.Network().Peerstore().ClearAddrs(b.host.ID())
		// libp2p's own dial backoff forgets a peer's failed addresses as
		// soon as any connection to it succeeds: it does not do this job.
		a.host.Network().(*swarm.Swarm).Backoff().Clear(b.host.ID())
	}
}
