package p2p

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPeerExchangeAndCache(t *testing.T) {
	dhtNode := func(boot ...string) *Node {
		return newTestNode(t, Config{ListenAddrs: []string{tcpAddr}, EnableDHT: true, DHTServer: true, BootstrapPeers: boot})
	}
	b := dhtNode()
	d := dhtNode(b.Addrs()[0])
	eventually(t, 10*time.Second, "d connected to b", func() bool { return b.IsConnected(d.PeerID()) })

	// a knows only b; peer exchange brings it d.
	a := dhtNode(b.Addrs()[0])
	eventually(t, 15*time.Second, "a connected to d through pex", func() bool { return a.IsConnected(d.PeerID()) })
	cache := a.PeerCache()
	if !slices.ContainsFunc(cache, func(s string) bool { return strings.HasSuffix(s, "/p2p/"+d.PeerID()) }) {
		t.Fatalf("peer cache lacks d: %v", cache)
	}

	// With b gone, a new run of a finds the network again through its cache.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	a2 := newTestNode(t, Config{EnableDHT: true, CachedPeers: append(cache, "garbage", "/ip4/127.0.0.1/tcp/1")})
	eventually(t, 15*time.Second, "a2 connected to d from the cache", func() bool { return a2.IsConnected(d.PeerID()) })
}
