package p2p

// Peer exchange (/samizdat/pex/1) and the peer cache: many entry points
// (DESIGN §2, §6). When a node connects to a peer it asks for the peers
// that one knows; what it learns, with the peers it reached, becomes its
// peer cache, which the app persists and gives back as Config.CachedPeers.
// A node that once reached the network thus finds it again when the
// bootstrap addresses are blocked.
//
// Only DHT peers are exchanged (those speaking our Kademlia protocol): the
// same peers the DHT hands out to anyone asking, never a node's other
// contacts, so pex reveals nothing the DHT does not.

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// PEXProtocol is the peer-exchange protocol id.
const PEXProtocol = "/samizdat/pex/1"

// Peer-exchange limits: what one answer may hold, and how much of a
// stranger's answer we read.
const (
	pexVersion      = 1
	pexMaxPeers     = 16
	pexMaxAddrs     = 8
	pexMaxBytes     = 32 << 10
	pexTimeout      = 10 * time.Second
	pexInterval     = 10 * time.Minute // between two asks of the same peer
	pexDialNew      = 3                // learnt peers dialled at once, when few are connected
	pexEnoughPeers  = 8
	peerCacheMax    = 32
	dhtProtocolName = DHTProtocolPrefix + "/kad/1.0.0"
)

type pexMsg struct {
	V     int       `json:"v"`
	Peers []pexPeer `json:"peers"`
}

type pexPeer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// startPEX serves peer exchange and asks each newly connected peer.
func (n *Node) startPEX() {
	n.host.SetStreamHandler(PEXProtocol, n.servePEX)
	n.OnConnected(func(id string) {
		pid, err := peer.Decode(id)
		if err != nil {
			return
		}
		if n.pexShouldAsk(pid, time.Now()) {
			n.askPEX(pid)
		}
	})
}

// pexAskedMax bounds the peers whose last ask is remembered: every peer
// that ever connected would otherwise stay in the map (peer ids are free).
const pexAskedMax = 4096

// pexShouldAsk reports whether to ask pid now (not asked within
// pexInterval) and records the ask. When the map is full, asks older than
// pexInterval are forgotten; if it is still full, pid is not asked.
func (n *Node) pexShouldAsk(pid peer.ID, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pexAsked == nil {
		n.pexAsked = map[peer.ID]time.Time{}
	}
	last, asked := n.pexAsked[pid]
	if asked && now.Sub(last) < pexInterval {
		return false
	}
	if !asked && len(n.pexAsked) >= pexAskedMax {
		for p, t := range n.pexAsked {
			if now.Sub(t) >= pexInterval {
				delete(n.pexAsked, p)
			}
		}
		if len(n.pexAsked) >= pexAskedMax {
			return false
		}
	}
	n.pexAsked[pid] = now
	return true
}

// dhtPeer reports whether p speaks our DHT protocol.
func (n *Node) dhtPeer(p peer.ID) bool {
	ps, err := n.host.Peerstore().SupportsProtocols(p, protocol.ID(dhtProtocolName))
	return err == nil && len(ps) > 0
}

// usableAddrs filters a peer's addresses to those worth giving out or
// dialling: no relay circuits, no DNS, and loopback only for loopback nodes.
func (n *Node) usableAddrs(addrs []ma.Multiaddr) []string {
	var out []string
	for _, a := range addrs {
		if isCircuit(a) || hasDNS(a) || isLoopback(a) != n.cfg.LoopbackOnly {
			continue
		}
		out = append(out, a.String())
		if len(out) == pexMaxAddrs {
			break
		}
	}
	return out
}

func (n *Node) knownDHTPeers(except peer.ID, limit int) []pexPeer {
	var out []pexPeer
	for _, p := range n.host.Network().Peers() {
		if p == except || !n.dhtPeer(p) {
			continue
		}
		addrs := n.usableAddrs(n.host.Peerstore().Addrs(p))
		if len(addrs) == 0 {
			continue
		}
		out = append(out, pexPeer{ID: p.String(), Addrs: addrs})
		if len(out) == limit {
			break
		}
	}
	return out
}

func (n *Node) servePEX(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(pexTimeout))
	b, _ := json.Marshal(pexMsg{V: pexVersion, Peers: n.knownDHTPeers(s.Conn().RemotePeer(), pexMaxPeers)})
	_, _ = s.Write(b)
}

func (n *Node) askPEX(p peer.ID) {
	ctx, cancel := context.WithTimeout(n.ctx, pexTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, PEXProtocol)
	if err != nil {
		return // not a samizdat peer, or gone
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(pexTimeout))
	b, err := io.ReadAll(io.LimitReader(s, pexMaxBytes+1))
	if err != nil || len(b) > pexMaxBytes {
		_ = s.Reset()
		return
	}
	var m pexMsg
	if err := json.Unmarshal(b, &m); err != nil || m.V != pexVersion {
		n.log.Debug("pexBadAnswer", "peer", short(p.String()))
		return
	}
	var fresh []peer.ID
	for _, pp := range m.Peers[:min(len(m.Peers), pexMaxPeers)] {
		id, err := peer.Decode(pp.ID)
		if err != nil || id == n.host.ID() || id == p {
			continue
		}
		var addrs []ma.Multiaddr
		for _, s := range pp.Addrs[:min(len(pp.Addrs), pexMaxAddrs)] {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				continue
			}
			addrs = append(addrs, a)
		}
		good := n.usableAddrs(addrs)
		if len(good) == 0 {
			continue
		}
		ms := make([]ma.Multiaddr, 0, len(good))
		for _, s := range good {
			ms = append(ms, ma.StringCast(s))
		}
		n.host.Peerstore().AddAddrs(id, ms, peerstore.AddressTTL)
		n.mu.Lock()
		if n.learned == nil {
			n.learned = map[peer.ID]time.Time{}
		}
		if _, ok := n.learned[id]; !ok && len(n.learned) < peerCacheMax*2 {
			n.learned[id] = time.Now()
		}
		n.mu.Unlock()
		if n.host.Network().Connectedness(id) != network.Connected {
			fresh = append(fresh, id)
		}
	}
	n.log.Debug("pexLearnt", "from", short(p.String()), "peers", len(m.Peers), "new", len(fresh))
	// Few connections: widen our foothold with some of the new peers.
	if len(n.host.Network().Peers()) < pexEnoughPeers {
		for _, id := range fresh[:min(len(fresh), pexDialNew)] {
			_ = n.host.Connect(ctx, peer.AddrInfo{ID: id})
		}
	}
}

// PeerCache returns up to 32 entry points to persist for next time, as
// full multiaddrs ending in /p2p/<id>: connected DHT peers first, then
// peers learnt through peer exchange.
func (n *Node) PeerCache() []string {
	var out []string
	seen := map[string]bool{}
	add := func(id peer.ID) {
		if len(seen) >= peerCacheMax || seen[id.String()] {
			return
		}
		addrs := n.usableAddrs(n.host.Peerstore().Addrs(id))
		if len(addrs) == 0 {
			return
		}
		seen[id.String()] = true
		for _, a := range addrs {
			out = append(out, a+"/p2p/"+id.String())
		}
	}
	for _, p := range n.knownDHTPeers("", peerCacheMax) {
		if id, err := peer.Decode(p.ID); err == nil {
			add(id)
		}
	}
	n.mu.Lock()
	learned := make([]peer.ID, 0, len(n.learned))
	for id := range n.learned {
		learned = append(learned, id)
	}
	n.mu.Unlock()
	slices.SortFunc(learned, func(a, b peer.ID) int { return strings.Compare(string(a), string(b)) })
	for _, id := range learned {
		add(id)
	}
	return out
}
