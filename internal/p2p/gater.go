package p2p

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// gater enforces Config.LoopbackOnly and counts outbound dials, so tests can
// prove that an idle node dials nobody.
type gater struct {
	loopbackOnly bool
	// proxyOnly (Config.SOCKS5) refuses dials the proxy cannot carry:
	// the WebSocket transport dials by itself, QUIC is UDP.
	proxyOnly bool
	peerDials atomic.Int64 // outbound dial attempts, allowed or not
	refused   atomic.Int64 // dials and accepts refused by loopbackOnly
}

var _ connmgr.ConnectionGater = (*gater)(nil)

func (g *gater) InterceptPeerDial(peer.ID) bool {
	g.peerDials.Add(1)
	return true
}

func (g *gater) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool {
	if g.loopbackOnly && !isLoopback(a) {
		g.refused.Add(1)
		return false
	}
	if g.proxyOnly && TransportName(a.String()) != "tcp" {
		return false
	}
	return true
}

func (g *gater) InterceptAccept(c network.ConnMultiaddrs) bool {
	if g.loopbackOnly && !isLoopback(c.RemoteMultiaddr()) {
		g.refused.Add(1)
		return false
	}
	return true
}

func (g *gater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// loopbackAddrs is the address factory under LoopbackOnly: never advertise
// (or let identify and the DHT spread) anything but loopback addresses.
func loopbackAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if isLoopback(a) {
			out = append(out, a)
		}
	}
	return out
}
