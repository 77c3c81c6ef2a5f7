package p2p

import (
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Connection kinds reported by ConnKind.
const (
	ConnNone   = ""       // not connected
	ConnDirect = "direct" // at least one direct connection
	ConnRelay  = "relay"  // connected only through a circuit relay
)

// ConnKind tells how we are connected to a peer right now: directly,
// only through a relay, or not at all.
func (n *Node) ConnKind(peerID string) string {
	id, err := peer.Decode(peerID)
	if err != nil {
		return ConnNone
	}
	kind := ConnNone
	for _, c := range n.host.Network().ConnsToPeer(id) {
		if c.IsClosed() {
			continue
		}
		if strings.Contains(c.RemoteMultiaddr().String(), "/p2p-circuit") || c.Stat().Limited {
			kind = ConnRelay
			continue
		}
		return ConnDirect
	}
	return kind
}

// PeerAddrs returns the addresses this node knows for a peer (given to it,
// or told by the peer itself through identify): what it could record of
// where that peer is.
func (n *Node) PeerAddrs(peerID string) []string {
	id, err := peer.Decode(peerID)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range n.host.Peerstore().Addrs(id) {
		out = append(out, a.String())
	}
	for _, c := range n.host.Network().ConnsToPeer(id) {
		out = append(out, c.RemoteMultiaddr().String())
	}
	return out
}
