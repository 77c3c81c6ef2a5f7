package p2p

import (
	"github.com/libp2p/go-libp2p/core/metrics"
)

// StreamBytes is what the node's streams of one protocol carried: their
// payload, above yamux, Noise and TCP (whose framing, keepalives and
// handshakes are not in it).
type StreamBytes struct {
	In, Out int64
}

// BandwidthByProtocol returns the bytes the node's streams carried so far,
// by protocol id ("" for streams whose protocol was not negotiated yet),
// or nil unless Config.CountBandwidth is set. Throwaway hosts' streams
// (mailbox traffic, ephemeral.go) are not counted: they are other hosts.
func (n *Node) BandwidthByProtocol() map[string]StreamBytes {
	if n.bwc == nil {
		return nil
	}
	out := map[string]StreamBytes{}
	for p, s := range n.bwc.GetBandwidthByProtocol() {
		out[string(p)] = StreamBytes{In: s.TotalIn, Out: s.TotalOut}
	}
	return out
}

// newBandwidthCounter returns the counter Config.CountBandwidth asks for,
// or nil.
func newBandwidthCounter(cfg Config) *metrics.BandwidthCounter {
	if !cfg.CountBandwidth {
		return nil
	}
	return metrics.NewBandwidthCounter()
}
