package p2p

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// MDNSServiceName is the DNS-SD service samizdat nodes announce on the
// local network: our own, not libp2p's "_p2p._udp", so that only samizdat
// nodes find each other (and IPFS nodes on the same Wi-Fi are not dialled).
const MDNSServiceName = "_samizdat._udp"

// mdnsAddrTTL is how long addresses learnt from mDNS are kept: a LAN peer
// that stops announcing itself has probably left the network.
const mdnsAddrTTL = 10 * time.Minute

// mdnsNotifee connects to samizdat peers found on the LAN.
type mdnsNotifee struct {
	n     *Node
	found atomic.Int64
}

func (m *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.host.ID() || n.ctx.Err() != nil {
		return
	}
	m.found.Add(1)
	n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, mdnsAddrTTL)
	// The notifee is called from the resolver's goroutine: dial in one of
	// our own, owned by the node.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
		defer cancel()
		if err := n.host.Connect(ctx, ai); err != nil {
			n.log.Debug("mdnsDialFailed", "peer", short(ai.ID.String()), "err", err)
			return
		}
		n.log.Debug("mdnsPeerConnected", "peer", short(ai.ID.String()))
	}()
}

// startMDNS announces the node on every local interface and dials the
// samizdat peers it hears of. It is refused for LoopbackOnly nodes (see
// Config.EnableMDNS): mDNS is multicast on the real interfaces.
func (n *Node) startMDNS() error {
	n.mdnsNotifee = &mdnsNotifee{n: n}
	svc := mdns.NewMdnsService(n.host, MDNSServiceName, n.mdnsNotifee)
	if err := svc.Start(); err != nil {
		return err
	}
	n.mdns = svc
	return nil
}

// MDNSPeersFound reports how many announcements of other samizdat peers
// mDNS has heard since start (repeats included); 0 when mDNS is off.
func (n *Node) MDNSPeersFound() int64 {
	if n.mdnsNotifee == nil {
		return 0
	}
	return n.mdnsNotifee.found.Load()
}

// MDNSEnabled reports whether LAN discovery runs on this node.
func (n *Node) MDNSEnabled() bool { return n.mdns != nil }
