package p2p

import (
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
)

// RelayStats counts, for an operator's metrics, the peers connected now
// and the circuits this node relays now (each circuit is one stop stream
// the relay opened to the circuit's destination). No ids.
func (n *Node) RelayStats() (peers, circuits int) {
	nw := n.host.Network()
	peers = len(nw.Peers())
	for _, c := range nw.Conns() {
		for _, s := range c.GetStreams() {
			if s.Protocol() == proto.ProtoIDv2Stop && s.Stat().Direction == network.DirOutbound {
				circuits++
			}
		}
	}
	return peers, circuits
}
