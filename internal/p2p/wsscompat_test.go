package p2p

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/samizdat-im/samizdat/internal/p2p/tlsface"
)

// Compatibility over /tls/ws with a node from before issue 15, which ran
// go-libp2p's stock WebSocket transport: its listener upgrades an upgrade
// request on any path but negotiates HTTP/2 when offered, and its dialer
// upgrades on the path "/". Neither way works over /tls/ws: a new dialer
// offers h2 (as Go's net/http does), the old server picks it and the
// WebSocket handshake fails; an old dialer asks for "/", which a new node
// answers with its static site. An ECH twin address is no address an old
// node can dial at all. They still talk over TCP (and QUIC).
// docs/CENSORSHIP.md, "Old and new nodes".
func TestSecureWebSocketOldNode(t *testing.T) {
	id, err := tlsface.New("www.samizdat.invalid", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsface.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	old, err := libp2p.New(
		libp2p.NoTransports,
		libp2p.Transport(websocket.New,
			websocket.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert.Cert}}),
			websocket.WithTLSClientConfig(&tls.Config{InsecureSkipVerify: true, ServerName: "www.samizdat.invalid", NextProtos: []string{"http/1.1"}})),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ListenAddrStrings(wssAddr, tcpAddr),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	key, _ := NewECH("cover.example.test")
	n := newTestNode(t, Config{ListenAddrs: []string{wssAddr}, TLSName: "inner.example.test", ECH: key})

	// Old → new.
	nid, _ := peer.Decode(n.PeerID())
	var plain, twin ma.Multiaddr
	for _, a := range n.host.Addrs() {
		switch s := a.String(); {
		case strings.Contains(s, "/certhash/"):
			twin = a
		case strings.Contains(s, "/tls/sni/"):
			plain = a
		}
	}
	if plain == nil || twin == nil {
		t.Fatalf("addresses %v", n.host.Addrs())
	}
	err = old.Connect(testCtx(t, 10*time.Second), peer.AddrInfo{ID: nid, Addrs: []ma.Multiaddr{plain}})
	if err == nil {
		t.Fatal("an old node connected to a new one over /tls/ws: the new listener upgrades a path a prober could guess")
	}
	t.Logf("old → new over /tls/ws: %.200s", err)
	if err := old.Connect(testCtx(t, 10*time.Second), peer.AddrInfo{ID: nid, Addrs: []ma.Multiaddr{twin}}); err == nil || !strings.Contains(err.Error(), "certhash/u") || !strings.Contains(err.Error(), "no transport for protocol") {
		t.Fatalf("an old node given only the ECH twin: %v, want no transport for it", err)
	}
	// New → old.
	var oldWSS, oldTCP string
	for _, a := range old.Addrs() {
		if strings.Contains(a.String(), "/tls/ws") {
			oldWSS = a.String() + "/p2p/" + old.ID().String()
		} else {
			oldTCP = a.String() + "/p2p/" + old.ID().String()
		}
	}
	err = n.Connect(testCtx(t, 10*time.Second), old.ID().String(), []string{oldWSS})
	if err == nil || !strings.Contains(err.Error(), `protocol "h2"`) {
		t.Fatalf("a new node dialing an old one over /tls/ws: %v, want the old server's HTTP/2 to fail the handshake", err)
	}
	t.Logf("new → old over /tls/ws: %.200s", err)
	if err := n.Connect(testCtx(t, 10*time.Second), old.ID().String(), []string{oldTCP}); err != nil {
		t.Fatalf("a new node dialing an old one over TCP: %v", err)
	}

}
