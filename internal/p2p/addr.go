package p2p

import (
	"context"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// parsePeerID parses a textual peer id.
func parsePeerID(s string) (peer.ID, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrBadPeerID)
	}
	id, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrBadPeerID, short(s), err)
	}
	return id, nil
}

// parseMultiaddr parses s and rejects what we never dial: DNS names, and
// anything but loopback when loopbackOnly is set.
func parseMultiaddr(s string, loopbackOnly bool) (ma.Multiaddr, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadAddr)
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadAddr, s, err)
	}
	if hasDNS(m) {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadAddr, s, ErrDNSDisabled)
	}
	if loopbackOnly && !isLoopback(m) {
		return nil, fmt.Errorf("%w: %q: not loopback and the node is loopback-only", ErrBadAddr, s)
	}
	return m, nil
}

// parsePeerAddrs parses addresses for peer id: each may end in /p2p/<id>,
// which must then be id.
func parsePeerAddrs(id peer.ID, addrs []string, loopbackOnly bool) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		m, err := parseMultiaddr(s, loopbackOnly)
		if err != nil {
			return nil, err
		}
		transport, pid := peer.SplitAddr(m)
		if pid != "" && pid != id {
			return nil, fmt.Errorf("%w: %q belongs to another peer", ErrBadAddr, s)
		}
		if len(transport) == 0 {
			return nil, fmt.Errorf("%w: %q has no transport part", ErrBadAddr, s)
		}
		out = append(out, transport)
	}
	return out, nil
}

// parseBootstrap parses full /p2p/<id> multiaddrs, grouping them by peer.
func parseBootstrap(addrs []string, loopbackOnly bool) ([]peer.AddrInfo, error) {
	ms := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		m, err := parseMultiaddr(s, loopbackOnly)
		if err != nil {
			return nil, err
		}
		if _, id := peer.SplitAddr(m); id == "" {
			return nil, fmt.Errorf("%w: %q: bootstrap address needs /p2p/<peer id>", ErrBadAddr, s)
		}
		ms = append(ms, m)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(ms...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAddr, err)
	}
	return infos, nil
}

func hasDNS(m ma.Multiaddr) bool {
	for _, c := range m {
		switch c.Protocol().Code {
		case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
			return true
		}
	}
	return false
}

// isLoopback reports whether m's first component is a loopback IP.
func isLoopback(m ma.Multiaddr) bool {
	return manet.IsIPLoopback(m)
}

// p2pAddrs appends /p2p/<id> to each transport address.
func p2pAddrs(id peer.ID, addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	suffix := "/p2p/" + id.String()
	for _, a := range addrs {
		if _, pid := peer.SplitAddr(a); pid != "" {
			out = append(out, a.String())
			continue
		}
		out = append(out, a.String()+suffix)
	}
	return out
}

// short shortens a peer id for logs and error messages: never log a full id.
func short(id string) string {
	const n = 16 // Ed25519 ids all start with "12D3KooW"; keep 8 more characters.
	if len(id) <= n {
		return id
	}
	return id[:n]
}

// noDNS is the multiaddr resolver of every Node: it refuses to resolve, so a
// /dns address that slips through never causes a lookup.
type noDNS struct{}

func (noDNS) ResolveDNSAddr(context.Context, peer.ID, ma.Multiaddr, int, int) ([]ma.Multiaddr, error) {
	return nil, ErrDNSDisabled
}

func (noDNS) ResolveDNSComponent(context.Context, ma.Multiaddr, int) ([]ma.Multiaddr, error) {
	return nil, ErrDNSDisabled
}
