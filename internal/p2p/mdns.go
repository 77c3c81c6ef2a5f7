package p2p

import (
	"context"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// MDNSServiceName is the DNS-SD service samizdat nodes announce on the
// local network: our own, not libp2p's "_p2p._udp", so that only samizdat
// nodes find each other (and IPFS nodes on the same Wi-Fi are not dialled).
const MDNSServiceName = "_samizdat._udp"

const (
	// mdnsAddrTTL is how long addresses learnt from mDNS are kept: a LAN
	// peer that stops announcing itself has probably left the network.
	mdnsAddrTTL = 10 * time.Minute
	// mdnsCheckInterval is how often the interface addresses are checked:
	// a phone that joins another network (new address) announces itself
	// again there and asks at once who is around.
	mdnsCheckInterval = 3 * time.Second
	// mdnsDialJitter and mdnsDialAttempts shape the dials to a peer heard
	// of on the LAN.
	mdnsDialJitter   = 500 * time.Millisecond
	mdnsDialAttempts = 5
)

// lanDiscovery runs libp2p's mDNS service and restarts it when the
// node's interface addresses change (libp2p announces the addresses it
// had at start only).
type lanDiscovery struct {
	n     *Node
	found atomic.Int64

	mu     sync.Mutex
	closed bool
	svc    mdns.Service
	addrs  []string
}

// HandlePeerFound connects to a samizdat peer heard of on the LAN.
func (d *lanDiscovery) HandlePeerFound(ai peer.AddrInfo) {
	n := d.n
	if ai.ID == n.host.ID() {
		return
	}
	// libp2p calls this in a goroutine of its own: dial in one of ours,
	// owned by the node (unless it is closing).
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	n.wg.Add(1)
	d.mu.Unlock()
	d.found.Add(1)
	n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, mdnsAddrTTL)
	go func() {
		defer n.wg.Done()
		// Two nodes that hear each other at once dial each other at once,
		// and a simultaneous open can fail both ways: start after a random
		// pause, and try again a few times (the announcement may not come
		// again for a minute).
		wait := time.Duration(rand.Int64N(int64(mdnsDialJitter)))
		for attempt := 0; attempt < mdnsDialAttempts; attempt++ {
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(wait):
			}
			if n.host.Network().Connectedness(ai.ID) == network.Connected {
				return
			}
			ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
			err := n.host.Connect(ctx, ai)
			cancel()
			if err == nil {
				n.log.Debug("mdnsPeerConnected", "peer", short(ai.ID.String()))
				return
			}
			n.log.Debug("mdnsDialFailed", "peer", short(ai.ID.String()), "attempt", attempt+1, "err", err)
			wait = time.Second<<attempt + time.Duration(rand.Int64N(int64(mdnsDialJitter)))
		}
	}()
}

// startMDNS announces the node on every local interface and dials the
// samizdat peers it hears of. New refuses it for LoopbackOnly nodes (see
// Config.EnableMDNS): mDNS is multicast on the real interfaces.
func (n *Node) startMDNS() error {
	d := &lanDiscovery{n: n}
	if err := d.restart(); err != nil {
		return err
	}
	n.lan = d
	n.wg.Add(1)
	go d.watch()
	return nil
}

// currentAddrs lists the machine's interface addresses (libp2p caches its
// own view of them for a while; a move must be seen at once).
func (d *lanDiscovery) currentAddrs() []string {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	slices.Sort(out)
	return out
}

// restart (re)starts the service with the current addresses.
func (d *lanDiscovery) restart() error {
	addrs := d.currentAddrs()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.svc != nil {
		_ = d.svc.Close()
		d.svc = nil
	}
	d.addrs = addrs
	svc := mdns.NewMdnsService(d.n.host, MDNSServiceName, d)
	if err := svc.Start(); err != nil {
		_ = svc.Close()
		return err
	}
	d.svc = svc
	return nil
}

// watch restarts the service when the interface addresses change.
func (d *lanDiscovery) watch() {
	defer d.n.wg.Done()
	t := time.NewTicker(mdnsCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-d.n.ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		same := slices.Equal(d.addrs, d.currentAddrs())
		d.mu.Unlock()
		if same {
			continue
		}
		if err := d.restart(); err != nil {
			d.n.log.Info("mdnsRestartFailed", "err", err)
			continue
		}
		d.n.log.Info("mdnsRestarted", "addrs", len(d.addrs))
	}
}

// close stops the service; no dial starts after it returns.
func (d *lanDiscovery) close() error {
	d.mu.Lock()
	d.closed = true
	svc := d.svc
	d.svc = nil
	d.mu.Unlock()
	if svc != nil {
		return svc.Close()
	}
	return nil
}

// MDNSPeersFound reports how many announcements of other samizdat peers
// mDNS has heard since start (repeats included); 0 when mDNS is off.
func (n *Node) MDNSPeersFound() int64 {
	if n.lan == nil {
		return 0
	}
	return n.lan.found.Load()
}

// MDNSEnabled reports whether LAN discovery runs on this node.
func (n *Node) MDNSEnabled() bool { return n.lan != nil }

// IsLANPeer reports whether some direct connection to peerID comes from an
// address not routed on the public internet (loopback, RFC 1918 and other
// private ranges, link-local, the RFC 2544 benchmarking block…): a
// neighbour, for mesh mode, rather than a peer across the internet.
func (n *Node) IsLANPeer(peerID string) bool {
	id, err := peer.Decode(peerID)
	if err != nil {
		return false
	}
	for _, c := range n.host.Network().ConnsToPeer(id) {
		ra := c.RemoteMultiaddr()
		if _, err := ra.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		if !manet.IsPublicAddr(ra) {
			return true
		}
	}
	return false
}
