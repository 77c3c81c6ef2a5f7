package p2p

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// startRelayService makes h a circuit relay v2 with libp2p's default
// resources (limited circuits: 2 minutes and 128 KiB each way, enough for
// messages and hole punching, not for bulk transfer through a volunteer).
// libp2p's own EnableRelayService starts the relay only once AutoNAT has
// found the host publicly reachable, which a relay on a private network (or
// loopback) never is; an operator who asks for the service gets it now.
func startRelayService(h host.Host, loopbackOnly bool) (*relayv2.Relay, error) {
	filter := manet.IsPublicAddr
	if loopbackOnly {
		filter = isLoopback
	}
	r, err := relayv2.New(h, relayv2.WithReservationAddressFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("p2p: start relay service: %w", err)
	}
	return r, nil
}

// RelayReservation is a slot booked on a circuit relay.
type RelayReservation struct {
	// Addrs are this node's addresses through the relay, of the form
	// <relay addr>/p2p/<relay>/p2p-circuit/p2p/<this node>: others dial
	// them to reach a node that they cannot dial directly.
	Addrs []string
	// Expires is when the relay drops the reservation unless it is renewed
	// by calling ReserveRelay again.
	Expires time.Time
}

// ReserveRelay books a slot on the circuit relay v2 at relayAddr (a full
// multiaddr ending in /p2p/<relay id>), so that peers can reach this node
// through it. Streams over relayed connections are limited in time and
// bytes by the relay.
func (n *Node) ReserveRelay(ctx context.Context, relayAddr string) (RelayReservation, error) {
	if n.ctx.Err() != nil {
		return RelayReservation{}, ErrClosed
	}
	m, err := parseMultiaddr(relayAddr, n.cfg.LoopbackOnly)
	if err != nil {
		return RelayReservation{}, err
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return RelayReservation{}, fmt.Errorf("%w: %q: a relay address needs /p2p/<peer id>", ErrBadAddr, relayAddr)
	}
	if ai.ID == n.host.ID() {
		return RelayReservation{}, fmt.Errorf("%w: that is this node", ErrBadPeerID)
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return RelayReservation{}, fmt.Errorf("%w: relay %s: %w", ErrUnreachable, short(ai.ID.String()), err)
	}
	rsvp, err := client.Reserve(ctx, n.host, *ai)
	if err != nil {
		return RelayReservation{}, fmt.Errorf("p2p: reserve on relay %s: %w", short(ai.ID.String()), err)
	}
	seen := map[string]bool{}
	var out []string
	add := func(a ma.Multiaddr) {
		transport, _ := peer.SplitAddr(a)
		if len(transport) == 0 || (n.cfg.LoopbackOnly && !isLoopback(transport)) {
			return
		}
		s := transport.String() + "/p2p/" + ai.ID.String() + "/p2p-circuit/p2p/" + n.host.ID().String()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, a := range ai.Addrs {
		add(a)
	}
	for _, a := range rsvp.Addrs {
		add(a)
	}
	n.log.Info("relayReserved", "relay", short(ai.ID.String()), "addrs", len(out), "expires", rsvp.Expiration)
	return RelayReservation{Addrs: out, Expires: rsvp.Expiration}, nil
}

// isCircuit reports whether m goes through a circuit relay.
func isCircuit(m ma.Multiaddr) bool {
	for _, c := range m {
		if c.Protocol().Code == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}
