package p2p

import (
	"testing"
	"time"
)

// TestIsLANPeer: a peer connected over loopback is a neighbour for mesh
// mode; an unknown or malformed one is not. (mDNS itself runs only inside
// network namespaces: cmd/samizdat's TestLabMeshCarrier.)
func TestIsLANPeer(t *testing.T) {
	t.Parallel()
	a := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}, LoopbackOnly: true})
	b := newTestNode(t, Config{LoopbackOnly: true})
	if b.IsLANPeer(a.PeerID()) || b.IsLANPeer("not a peer id") {
		t.Fatal("a peer we are not connected to is a LAN peer")
	}
	if err := b.Connect(testCtx(t, 10*time.Second), a.PeerID(), a.Addrs()); err != nil {
		t.Fatal(err)
	}
	if !b.IsLANPeer(a.PeerID()) {
		t.Fatal("a peer connected over loopback is not a LAN peer")
	}
	if b.MDNSEnabled() || b.MDNSPeersFound() != 0 {
		t.Fatal("mDNS runs on a node without EnableMDNS")
	}
}
