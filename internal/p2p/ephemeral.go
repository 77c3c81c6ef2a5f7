package p2p

// Streams that name no one (issue 14): mailbox deposits and fetches must
// not tell the host which device makes them. OpenEphemeral opens each such
// stream from a throwaway libp2p host — a fresh key, listening nowhere, no
// DHT, no peer exchange, no relay service — that dies with the stream: the
// host sees a peer id it never saw before and will never see again, and,
// when the address it dials goes through another relay's circuit, the
// relay's address instead of ours. The node's own key, addresses and
// connections take no part.

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"
)

// ephemeralAddrTTL is how long a throwaway host remembers the addresses it
// was given (it lives for one stream).
const ephemeralAddrTTL = 10 * time.Minute

// OpenEphemeral opens one stream of protocol to peerID from a throwaway
// transport identity (a fresh Ed25519 key per call), dialling addrs (which
// may end in /p2p/<peerID>; circuit addresses …/p2p/<relay>/p2p-circuit go
// through that relay, so the peer sees the relay's address, not ours).
// With no addrs, the addresses the node knows for peerID are used; the
// throwaway host has no DHT to look more up. It uses the node's transport
// settings (LoopbackOnly, SOCKS5, bridges) but never its key or its
// connections. Closing or resetting the stream closes the throwaway host;
// so does closing the node.
func (n *Node) OpenEphemeral(ctx context.Context, peerID string, addrs []string, proto string) (Stream, error) {
	id, err := n.remotePeer(peerID)
	if err != nil {
		return nil, err
	}
	if err := checkProtocol(proto); err != nil {
		return nil, err
	}
	ms, err := parsePeerAddrs(id, addrs, n.cfg.LoopbackOnly)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		ms = n.host.Peerstore().Addrs(id)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoAddrs, short(peerID))
	}
	h, err := n.ephemeralHost()
	if err != nil {
		return nil, err
	}
	if !n.trackEphemeral(h, true) {
		_ = h.Close()
		return nil, ErrClosed
	}
	fail := func(err error) (Stream, error) {
		n.trackEphemeral(h, false)
		_ = h.Close()
		return nil, err
	}
	// Relayed connections are limited (time and bytes, by the relay): our
	// protocols use them like OpenStream does.
	ctx = network.WithAllowLimitedConn(ctx, proto)
	h.Peerstore().AddAddrs(id, ms, ephemeralAddrTTL)
	if err := h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: ms}); err != nil {
		return fail(fmt.Errorf("%w: %s: %w", ErrUnreachable, short(peerID), err))
	}
	s, err := h.NewStream(ctx, id, protocol.ID(proto))
	if err != nil {
		return fail(fmt.Errorf("p2p: open %s stream to %s: %w", proto, short(peerID), streamError(err)))
	}
	return &ephemeralStream{stream: stream{s}, done: func() {
		n.trackEphemeral(h, false)
		_ = h.Close()
	}}, nil
}

// ephemeralHost builds a throwaway host: a fresh key, the node's transports
// and gater rules, no listener, no services beyond what every libp2p host
// runs (identify and ping, which tell the peer nothing of this node).
func (n *Node) ephemeralHost() (host.Host, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: throwaway key: %w", err)
	}
	self, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("p2p: throwaway key: %w", err)
	}
	g := &gater{loopbackOnly: n.cfg.LoopbackOnly, proxyOnly: n.cfg.SOCKS5 != ""}
	topts, err := transportOptions(n.cfg, self, g, n.pts, nil)
	if err != nil {
		return nil, err
	}
	opts := append(topts,
		libp2p.Identity(sk),
		libp2p.DialRanker(n.tmem.rank),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, muxer),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.ConnectionGater(g),
		libp2p.MultiaddrResolver(noDNS{}),
		libp2p.DisableMetrics(),
		libp2p.WithDialTimeout(dialTimeout),
		libp2p.UserAgent("samizdat"),
		// It dials circuit addresses, and listens nowhere: identify
		// tells the peer no address of ours.
		libp2p.EnableRelay(),
		libp2p.NoListenAddrs,
		libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return nil }),
	)
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: start throwaway host: %w", err)
	}
	return h, nil
}

// trackEphemeral adds (or removes) a live throwaway host, so that Close
// ends them all; it reports false when the node is closed already.
func (n *Node) trackEphemeral(h host.Host, add bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !add {
		delete(n.ephemeral, h)
		return true
	}
	if n.ctx.Err() != nil {
		return false
	}
	if n.ephemeral == nil {
		n.ephemeral = map[host.Host]struct{}{}
	}
	n.ephemeral[h] = struct{}{}
	return true
}

// closeEphemeral closes every live throwaway host (Node.Close).
func (n *Node) closeEphemeral() {
	n.mu.Lock()
	hs := make([]host.Host, 0, len(n.ephemeral))
	for h := range n.ephemeral {
		hs = append(hs, h)
	}
	n.ephemeral = nil
	n.mu.Unlock()
	for _, h := range hs {
		_ = h.Close()
	}
}

// ephemeralStream is a stream whose throwaway host closes with it.
type ephemeralStream struct {
	stream
	once sync.Once
	done func()
}

var _ Stream = (*ephemeralStream)(nil)

func (s *ephemeralStream) Close() error {
	err := s.stream.Close()
	s.once.Do(s.done)
	return err
}

func (s *ephemeralStream) Reset() error {
	err := s.stream.Reset()
	s.once.Do(s.done)
	return err
}

// RemoteAddr is the multiaddr the stream's connection came from (for a
// relayed connection, the relay's address and /p2p-circuit): what the peer
// at the other end, or this node for an inbound stream, sees of where it
// comes from.
func (s stream) RemoteAddr() string {
	return s.Conn().RemoteMultiaddr().String()
}

// CircuitAddrs returns the addresses in addrs that go through a circuit
// relay, or all of addrs if none does: dialled with OpenEphemeral, a
// circuit shows the peer the relay's address instead of ours.
func CircuitAddrs(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if m, err := ma.NewMultiaddr(a); err == nil && isCircuit(m) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return slices.Clone(addrs)
	}
	return out
}
