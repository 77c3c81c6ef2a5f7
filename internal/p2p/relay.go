package p2p

import (
	"context"
	"fmt"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// CircuitDataLimit is what one relayed connection may carry each way
// through our relay service before the relay resets it (libp2p's default
// is 128 KiB): mailbox deposits and fetches go through circuits so that a
// host sees the relay's address instead of its user's (issue 14), and one
// fetch page may hold up to 4 MiB. Circuits still last at most 2 minutes.
const CircuitDataLimit = 8 << 20

// startRelayService makes h a circuit relay v2 with libp2p's default
// resources but CircuitDataLimit (limited circuits: 2 minutes and 8 MiB
// each way, enough for messages, mailbox pages and hole punching, not for
// bulk transfer through a volunteer).
// libp2p's own EnableRelayService starts the relay only once AutoNAT has
// found the host publicly reachable, which a relay on a private network (or
// loopback) never is; an operator who asks for the service gets it now.
func startRelayService(h host.Host, loopbackOnly bool) (*relayv2.Relay, error) {
	filter := manet.IsPublicAddr
	if loopbackOnly {
		filter = isLoopback
	}
	limit := relayv2.DefaultLimit()
	limit.Data = CircuitDataLimit
	r, err := relayv2.New(h, relayv2.WithReservationAddressFilter(filter), relayv2.WithLimit(limit))
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

// validRelays keeps the static relays that parse (a bad one is logged and
// skipped: a stale entry must not keep the node from starting). The slots
// are kept by keepRelaySlots, not libp2p's autorelay, which advertises
// only relays with public addresses (a loopback or LAN relay has none).
func validRelays(addrs []string, loopbackOnly bool, log *slog.Logger) []string {
	var out []string
	for _, a := range addrs {
		if _, err := parseBootstrap([]string{a}, loopbackOnly); err != nil {
			log.Warn("staticRelayIgnored", "err", err)
			continue
		}
		out = append(out, a)
	}
	return out
}

// Slots on static relays (Config.StaticRelays): while the node is not
// publicly reachable (AutoNAT says so, or Config.ForcePrivate), it keeps a
// reservation on each, renewed before it expires, and Addrs lists the
// relayed addresses, so contacts holding its card reach it through them.

const (
	slotRenewBefore = 10 * time.Minute
	slotRetry       = 30 * time.Second
	slotCheck       = time.Minute
	slotRebook      = 2 * time.Second // after the relay's connection dropped
)

// keepRelaySlots runs until the node closes.
func (n *Node) keepRelaySlots() {
	sub, err := n.host.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtPeerConnectednessChanged)})
	if err != nil {
		n.log.Warn("relaySlotsDisabled", "err", err)
		return
	}
	defer sub.Close()
	private := n.cfg.ForcePrivate
	retry := slotRebook // doubles after each failed booking, up to slotRetry
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.relaysChanged:
			t.Reset(0)
			continue
		case e := <-sub.Out():
			if ev, ok := e.(event.EvtPeerConnectednessChanged); ok {
				// A relay we hold a slot on went away (restarted, or the
				// path broke): the slot is gone with the connection.
				if ev.Connectedness != network.Connected && n.dropSlotsOn(ev.Peer.String()) {
					t.Reset(slotRebook)
				}
				continue
			}
			if ev, ok := e.(event.EvtLocalReachabilityChanged); ok && !n.cfg.ForcePrivate {
				private = ev.Reachability != network.ReachabilityPublic
				if !private {
					n.mu.Lock()
					n.slots = nil // publicly reachable: direct addresses do
					n.mu.Unlock()
				}
			}
			continue
		case <-t.C:
		}
		next := slotCheck
		if private {
			for _, r := range n.staticRelays() {
				n.mu.Lock()
				cur, ok := n.slots[r]
				n.mu.Unlock()
				if ok && time.Until(cur.Expires) > slotRenewBefore {
					continue
				}
				ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
				rsvp, err := n.ReserveRelay(ctx, r)
				cancel()
				n.mu.Lock()
				if err != nil {
					n.log.Debug("relaySlotFailed", "err", err)
					if ok && time.Now().After(cur.Expires) {
						delete(n.slots, r)
					}
					next = min(next, retry)
					retry = min(retry*2, slotRetry)
				} else {
					if n.slots == nil {
						n.slots = map[string]RelayReservation{}
					}
					n.slots[r] = rsvp
					retry = slotRebook
				}
				n.mu.Unlock()
			}
		}
		t.Reset(next)
	}
}

// dropSlotsOn forgets the slots held on relay peer id and reports whether
// there were any.
func (n *Node) dropSlotsOn(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	dropped := false
	for r := range n.slots {
		if strings.HasSuffix(r, "/p2p/"+id) {
			delete(n.slots, r)
			dropped = true
		}
	}
	return dropped
}

// slotAddrs returns the relayed addresses of the unexpired slots.
func (n *Node) slotAddrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	now := time.Now()
	for _, r := range n.relays { // in configuration order
		if s, ok := n.slots[r]; ok && now.Before(s.Expires) {
			out = append(out, s.Addrs...)
		}
	}
	return out
}

func (n *Node) staticRelays() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.relays
}

// SetStaticRelays replaces Config.StaticRelays (e.g. with mailbox hosts
// found later). It returns ErrBadAddr for an address without /p2p/<id>.
func (n *Node) SetStaticRelays(addrs []string) error {
	if _, err := parseBootstrap(addrs, n.cfg.LoopbackOnly); err != nil {
		return err
	}
	n.mu.Lock()
	n.relays = slices.Clone(addrs)
	for r := range n.slots {
		if !slices.Contains(n.relays, r) {
			delete(n.slots, r)
		}
	}
	n.mu.Unlock()
	select {
	case n.relaysChanged <- struct{}{}:
	default:
	}
	return nil
}
