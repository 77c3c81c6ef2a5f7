package p2p

// Transport fallback with memory (DESIGN §6, §7): the node notes which
// transports carried its outbound connections and dials addresses of those
// first next time, the others only after a short delay; the app persists
// the list (Node.WorkedTransports → Config.PreferTransports).

import (
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// fallbackDelay is how long the dialer waits for the preferred transports
// before trying the others too.
const fallbackDelay = 700 * time.Millisecond

type transportMemory struct {
	pts    *ptClients
	paths  *pathBackoff
	mu     sync.Mutex
	prefer []string             // from the last runs, best first
	lastOK map[string]time.Time // this run's outbound successes
}

func newTransportMemory(prefer []string, pts *ptClients) *transportMemory {
	return &transportMemory{pts: pts, paths: newPathBackoff(time.Now), prefer: slices.Clone(prefer), lastOK: map[string]time.Time{}}
}

// name is TransportName, with TCP to a bridge named by its PT method.
func (m *transportMemory) name(a ma.Multiaddr) string {
	n := TransportName(a.String())
	if n == "tcp" && m.pts != nil {
		if na, err := manet.ToNetAddr(a); err == nil {
			if method, ok := m.pts.isBridge(na.String()); ok {
				return method
			}
		}
	}
	return n
}

func (m *transportMemory) worked(a ma.Multiaddr) {
	m.paths.succeeded(a)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastOK[m.name(a)] = time.Now()
}

// order returns the transports that worked, most recent first, then the
// remembered ones not yet retried this run.
func (m *transportMemory) order() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.lastOK)+len(m.prefer))
	for n := range m.lastOK {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return m.lastOK[out[i]].After(m.lastOK[out[j]]) })
	for _, n := range m.prefer {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// rank is the node's dial ranker: addresses of transports that worked go
// first, in that order, a few milliseconds apart; bridges are as good as
// preferred (the user configured them for a reason); the rest follow after
// fallbackDelay in libp2p's default order. Without memory or bridges it is
// libp2p's default ranker. A plain address with a working ECH twin is
// left out (preferECH). Paths backing off (pathbackoff.go) are left out
// while others remain.
func (m *transportMemory) rank(addrs []ma.Multiaddr) []network.AddrDelay {
	addrs = m.paths.filter(preferECH(addrs, m.paths.waiting))
	order := m.order()
	var first, rest []ma.Multiaddr
	for _, a := range addrs {
		n := m.name(a)
		if slices.Contains(order, n) || (m.pts != nil && n != TransportName(a.String())) {
			first = append(first, a)
		} else {
			rest = append(rest, a)
		}
	}
	if len(first) == 0 {
		return swarm.DefaultDialRanker(addrs)
	}
	idx := func(a ma.Multiaddr) int {
		if i := slices.Index(order, m.name(a)); i >= 0 {
			return i
		}
		return -1 // bridges first
	}
	sort.SliceStable(first, func(i, j int) bool { return idx(first[i]) < idx(first[j]) })
	out := make([]network.AddrDelay, 0, len(addrs))
	for i, a := range first {
		out = append(out, network.AddrDelay{Addr: a, Delay: time.Duration(i) * 50 * time.Millisecond})
	}
	for _, ad := range swarm.DefaultDialRanker(rest) {
		ad.Delay += fallbackDelay
		out = append(out, ad)
	}
	return out
}

// TransportUse is what the node knows about one transport.
type TransportUse struct {
	Name   string    `json:"name"`
	Open   int       `json:"open"`            // open connections on it now
	LastOK time.Time `json:"lastOk,omitzero"` // last outbound connection this run
}

// Transports reports the transports in use now and those that carried an
// outbound connection this run, most useful first.
func (n *Node) Transports() []TransportUse {
	byName := map[string]*TransportUse{}
	get := func(name string) *TransportUse {
		if u, ok := byName[name]; ok {
			return u
		}
		u := &TransportUse{Name: name}
		byName[name] = u
		return u
	}
	for _, c := range n.host.Network().Conns() {
		get(n.tmem.name(c.RemoteMultiaddr())).Open++
	}
	n.tmem.mu.Lock()
	for name, t := range n.tmem.lastOK {
		get(name).LastOK = t
	}
	n.tmem.mu.Unlock()
	out := make([]TransportUse, 0, len(byName))
	for _, u := range byName {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Open != out[j].Open {
			return out[i].Open > out[j].Open
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// WorkedTransports returns the transports to try first next time: those
// that carried an outbound connection this run, most recent first, then
// the ones remembered from before (Config.PreferTransports).
func (n *Node) WorkedTransports() []string { return n.tmem.order() }

// watchTransports records each outbound connection's transport.
func (n *Node) watchTransports() {
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if c.Stat().Direction == network.DirOutbound {
				n.tmem.worked(c.RemoteMultiaddr())
			}
		},
	})
}

// orPort is where PT servers forward to: the node's first plain TCP
// listener, a wildcard replaced by loopback.
func (n *Node) orPort() string {
	for _, a := range n.host.Network().ListenAddresses() {
		if TransportName(a.String()) != "tcp" {
			continue
		}
		na, err := manet.ToNetAddr(a)
		if err != nil {
			continue
		}
		ta := na.(*net.TCPAddr)
		if ta.IP.IsUnspecified() {
			ta.IP = net.IPv4(127, 0, 0, 1)
		}
		return ta.String()
	}
	return ""
}

// Bridges returns the bridge lines of the pluggable transports this node
// serves (PTConfig.Serve), to give to users who cannot reach it otherwise.
func (n *Node) Bridges() []string {
	host := ""
	for _, a := range n.Addrs() {
		if ip, err := manet.ToIP(a2m(a)); err == nil && !ip.IsLoopback() {
			host = ip.String()
			break
		}
	}
	out := make([]string, 0, len(n.ptSrv))
	for _, s := range n.ptSrv {
		out = append(out, s.bridgeLine(n.PeerID(), host))
	}
	return out
}

func a2m(s string) ma.Multiaddr {
	if i := strings.Index(s, "/p2p/"); i > 0 {
		s = s[:i]
	}
	m, _ := ma.NewMultiaddr(s)
	return m
}
