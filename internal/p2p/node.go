package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/samizdat-im/samizdat/internal/p2p/webrtcpt"
)

// Timeouts for work the node does on its own.
const (
	dialTimeout       = 15 * time.Second
	connGracePeriod   = time.Minute
	bootstrapTag      = "samizdat-bootstrap"
	bootstrapTagValue = 50
)

// Node is a running samizdat peer: a libp2p host plus, if enabled, the DHT,
// and the bootstrap dialer. Its methods are safe for concurrent use.
type Node struct {
	host  host.Host
	dht   *dht.IpfsDHT   // nil unless Config.EnableDHT
	relay *relayv2.Relay // nil unless Config.EnableRelayService
	gater *gater
	cfg   Config
	pts   *ptClients  // nil without bridges
	ptSrv []*ptServer // served pluggable transports
	tmem  *transportMemory
	wrtc  *webrtcpt.Holder // WebRTC's signalling ends (signal.go)
	log   *slog.Logger

	ctx    context.Context // cancelled by Close; parent of all background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node starts
	sub    event.Subscription

	mu            sync.Mutex
	onConnected   []func(peerID string)
	slots         map[string]RelayReservation // by relay address (keepRelaySlots; guarded by mu)
	relays        []string                    // static relays (guarded by mu)
	relaysChanged chan struct{}
	pexAsked      map[peer.ID]time.Time  // last peer-exchange ask per peer
	learned       map[peer.ID]time.Time  // peers learnt through peer exchange
	ephemeral     map[host.Host]struct{} // live throwaway hosts (ephemeral.go)

	lan *lanDiscovery // nil unless Config.EnableMDNS

	psMu   sync.Mutex
	ps     *pubsub.PubSub            // gossipsub, started by the first Join (pubsub.go)
	psSent sentCounter               // bytes of gossipsub RPCs sent
	psMesh meshView                  // the gossipsub mesh of each topic
	bwc    *metrics.BandwidthCounter // nil unless Config.CountBandwidth

	closeOnce sync.Once
	closeErr  error
}

// New starts a node: the host with TCP, QUIC-v1 and WebSocket transports,
// Noise, yamux, resource and connection managers; the DHT if enabled; and a
// background dialer for Config.BootstrapPeers. ctx bounds only the start-up;
// the node runs until Close.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.EnableMDNS && cfg.LoopbackOnly {
		return nil, ErrMDNSLoopback
	}
	log := cfg.logger()

	var sk crypto.PrivKey
	if cfg.PrivateKey != nil {
		var err error
		if sk, err = unmarshalKey(cfg.PrivateKey); err != nil {
			return nil, err
		}
	} else {
		var err error
		if sk, _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
			return nil, fmt.Errorf("p2p: generate key: %w", err)
		}
	}
	if err := cfg.resolveTLS(); err != nil {
		return nil, err
	}
	listen := make([]ma.Multiaddr, 0, len(cfg.ListenAddrs))
	for _, s := range cfg.ListenAddrs {
		m, err := parseMultiaddr(s, cfg.LoopbackOnly)
		if err != nil {
			return nil, fmt.Errorf("listen address: %w", err)
		}
		listen = append(listen, m)
	}
	boot, err := parseBootstrap(cfg.BootstrapPeers, cfg.LoopbackOnly)
	if err != nil {
		return nil, fmt.Errorf("bootstrap peer: %w", err)
	}

	g := &gater{loopbackOnly: cfg.LoopbackOnly, proxyOnly: cfg.SOCKS5 != ""}
	pts, err := startPTClients(ctx, cfg.PT, log)
	if err != nil {
		return nil, err
	}
	tmem := newTransportMemory(cfg.PreferTransports, pts)
	wrtc := webrtcpt.NewHolder(webrtcpt.Config{STUN: cfg.STUN, LoopbackOnly: cfg.LoopbackOnly, Gater: g})
	opts, err := hostOptions(cfg, sk, g, pts, tmem, wrtc)
	if err != nil {
		pts.close()
		return nil, err
	}
	bwc := newBandwidthCounter(cfg)
	if bwc != nil {
		opts = append(opts, libp2p.BandwidthReporter(bwc))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		pts.close()
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}
	if err := listenAll(h, listen, log); err != nil {
		pts.close()
		return nil, errors.Join(err, h.Close())
	}

	nctx, cancel := context.WithCancel(context.Background())
	n := &Node{host: h, gater: g, cfg: cfg, log: log, ctx: nctx, cancel: cancel, pts: pts, tmem: tmem,
		relays: validRelays(cfg.StaticRelays, cfg.LoopbackOnly, log), relaysChanged: make(chan struct{}, 1), wrtc: wrtc, bwc: bwc}
	n.startSignalling()
	if len(cfg.PT.Serve) > 0 {
		if n.ptSrv, err = startPTServers(ctx, cfg.PT, n.orPort(), log); err != nil {
			return nil, n.abort(err)
		}
	}

	// Subscribe before anything can connect, so OnConnected misses nothing.
	n.sub, err = h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.BufSize(eventBufSize))
	if err != nil {
		return nil, n.abort(fmt.Errorf("p2p: subscribe to events: %w", err))
	}
	n.wg.Add(1)
	go n.dispatchEvents()
	n.watchTransports()
	n.startPEX()
	// Bridges are entry points too, dialled through their transport.
	for _, b := range cfg.PT.Bridges {
		if ai, err := bridgeAddrInfo(b); err == nil {
			boot = append(boot, ai)
		}
	}
	// Cached peers join the bootstrap peers; a stale entry is no error.
	for _, c := range cfg.CachedPeers {
		ai, err := parseBootstrap([]string{c}, cfg.LoopbackOnly)
		if err != nil {
			continue
		}
		if i := slices.IndexFunc(boot, func(b peer.AddrInfo) bool { return b.ID == ai[0].ID }); i >= 0 {
			boot[i].Addrs = append(boot[i].Addrs, ai[0].Addrs...)
		} else {
			boot = append(boot, ai...)
		}
	}

	if cfg.EnableRelayService {
		if n.relay, err = startRelayService(h, cfg.LoopbackOnly); err != nil {
			return nil, n.abort(err)
		}
	}

	if cfg.EnableDHT {
		mode := dht.ModeAuto
		if cfg.DHTServer {
			mode = dht.ModeServer
		}
		n.dht, err = dht.New(h,
			dht.ProtocolPrefix(DHTProtocolPrefix),
			dht.Mode(mode),
			// Only our namespaces: no /pk or /ipns records from the IPFS world.
			dht.Validator(record.NamespacedValidator{cardNamespaceName: cardValidator{}}),
		)
		if err != nil {
			return nil, n.abort(fmt.Errorf("p2p: start dht: %w", err))
		}
	}

	if cfg.EnableMDNS {
		if err := n.startMDNS(); err != nil {
			return nil, n.abort(fmt.Errorf("p2p: start mdns: %w", err))
		}
	}

	if len(boot) > 0 {
		for _, ai := range boot {
			if ai.ID == h.ID() {
				continue
			}
			h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
			h.ConnManager().Protect(ai.ID, bootstrapTag)
		}
		n.wg.Add(1)
		go n.bootstrap(boot)
	}

	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.keepRelaySlots()
	}()

	log.Info("nodeStarted",
		"peer", short(h.ID().String()),
		"listenAddrs", len(h.Network().ListenAddresses()),
		"bootstrapPeers", len(boot),
		"dht", cfg.EnableDHT,
		"mdns", cfg.EnableMDNS,
		"natPortMap", cfg.EnableNATPortMap,
		"preferTransports", cfg.PreferTransports,
		"cachedPeers", len(cfg.CachedPeers),
		"loopbackOnly", cfg.LoopbackOnly)
	return n, nil
}

// hostOptions is the whole libp2p configuration. Nothing here falls back on
// libp2p's defaults that reach out by themselves: listen addresses,
// transports, security, muxer, resource and connection managers, metrics and
// DNS resolution are all set explicitly.
func hostOptions(cfg Config, sk crypto.PrivKey, g *gater, pts *ptClients, tmem *transportMemory, wrtc *webrtcpt.Holder) ([]libp2p.Option, error) {
	self, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, err
	}
	topts, err := transportOptions(cfg, self, g, pts, wrtc)
	if err != nil {
		return nil, err
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	low, high := cfg.connLimits()
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(connGracePeriod))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}

	opts := append(topts,
		libp2p.DialRanker(tmem.rank),
		libp2p.SwarmOpts(swarm.WithMetricsTracer(dialTracer{tmem.paths})),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, muxer),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(g),
		libp2p.MultiaddrResolver(noDNS{}),
		libp2p.DisableMetrics(),
		libp2p.WithDialTimeout(dialTimeout),
	)
	opts = append(opts, libp2p.Identity(sk))
	// Listening happens after construction (see listen): libp2p leaks its
	// goroutines when a listen address fails inside libp2p.New.
	// NoListenAddrs would also switch off the circuit relay transport, which
	// dials /p2p-circuit addresses and accepts connections through relays
	// this node has a reservation on (ReserveRelay): keep it on.
	opts = append(opts, libp2p.EnableRelay(), libp2p.NoListenAddrs)
	if cfg.EnableNATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if cfg.ForcePrivate {
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if cfg.EnableHolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	name, echList := cfg.TLSName, echConfigList(cfg.ECH)
	opts = append(opts, libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
		if cfg.LoopbackOnly {
			addrs = loopbackAddrs(addrs)
		}
		return withSNI(name, echList, addrs)
	}))
	return opts, nil
}

// listenAll listens on every address, logging those that fail; it fails only
// when none works, so a machine without IPv6 can still use the IPv4 ones.
func listenAll(h host.Host, listen []ma.Multiaddr, log *slog.Logger) error {
	var errs []error
	for _, a := range listen {
		if err := h.Network().Listen(a); err != nil {
			log.Warn("listenFailed", "addr", a.String(), "err", err)
			errs = append(errs, err)
		}
	}
	if len(listen) > 0 && len(errs) == len(listen) {
		return fmt.Errorf("%w: %w", ErrListen, errors.Join(errs...))
	}
	return nil
}

// abort tears down a half-started node and returns err.
func (n *Node) abort(err error) error {
	return errors.Join(err, n.Close())
}

// PeerID returns the node's own peer id.
func (n *Node) PeerID() string { return n.host.ID().String() }

// Addrs returns the node's listen addresses as full multiaddrs ending in
// /p2p/<id>, loopback ones included (they are what a local test or demo
// dials). Wildcard listen addresses are expanded to interface addresses.
func (n *Node) Addrs() []string {
	addrs, err := n.host.Network().InterfaceListenAddresses()
	if err != nil {
		addrs = n.host.Addrs()
	}
	if n.cfg.LoopbackOnly {
		addrs = loopbackAddrs(addrs)
	}
	addrs = withSNI(n.cfg.TLSName, echConfigList(n.cfg.ECH), addrs)
	// The relay transport's implicit "/p2p-circuit" listener is no address
	// anyone can dial (ReserveRelay returns the ones that are)...
	addrs = slices.DeleteFunc(addrs, isCircuit)
	// ...but those of the slots kept on StaticRelays are.
	return append(p2pAddrs(n.host.ID(), addrs), n.slotAddrs()...)
}

// Handle registers h for inbound streams of protocol (e.g. "/samizdat/msg/1"),
// replacing any earlier handler. h runs in its own goroutine per stream and
// owns the stream: it must Close or Reset it.
func (n *Node) Handle(proto string, h func(s Stream)) {
	if err := checkProtocol(proto); err != nil {
		// A bad constant protocol id is a programmer bug.
		panic(err)
	}
	n.host.SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
		h(stream{s})
	})
}

// Unhandle removes the handler for protocol.
func (n *Node) Unhandle(proto string) {
	n.host.RemoveStreamHandler(protocol.ID(proto))
}

func checkProtocol(proto string) error {
	if proto == "" || !strings.HasPrefix(proto, "/") {
		return fmt.Errorf("%w: %q", ErrBadProtocol, proto)
	}
	return nil
}

// AddAddrs remembers addresses of a peer (from an invite or a contact card)
// for ContactAddrTTL. Addresses may end in /p2p/<peerID>. Malformed input is
// dropped and logged; use Connect to get the error back.
func (n *Node) AddAddrs(peerID string, addrs []string) {
	id, err := parsePeerID(peerID)
	if err != nil {
		n.log.Warn("addAddrsIgnored", "err", err)
		return
	}
	ms := make([]ma.Multiaddr, 0, len(addrs))
	bad := 0
	for _, s := range addrs {
		m, err := parsePeerAddrs(id, []string{s}, n.cfg.LoopbackOnly)
		if err != nil {
			bad++
			continue
		}
		ms = append(ms, m...)
	}
	if bad > 0 {
		n.log.Warn("addAddrsBadAddrs", "peer", short(peerID), "bad", bad, "good", len(ms))
	}
	n.host.Peerstore().AddAddrs(id, ms, ContactAddrTTL)
}

// Connect connects to a peer. Addresses given here (optionally ending in
// /p2p/<peerID>) are remembered for an hour and tried first; with none, known
// addresses are used, then a DHT lookup if the DHT is enabled.
func (n *Node) Connect(ctx context.Context, peerID string, addrs []string) error {
	id, err := n.remotePeer(peerID)
	if err != nil {
		return err
	}
	ms, err := parsePeerAddrs(id, addrs, n.cfg.LoopbackOnly)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		n.host.Peerstore().AddAddrs(id, ms, peerstore.AddressTTL)
	}
	return n.ensureConnected(ctx, id)
}

// OpenStream opens a stream of protocol to a peer, connecting first if
// needed: through known addresses, else through a DHT lookup. It returns
// ErrProtocolNotSupported when the peer refuses the protocol; when the peer
// had announced the protocol, libp2p negotiates lazily and a refusal shows
// as an error on the first Read or Write instead.
func (n *Node) OpenStream(ctx context.Context, peerID string, proto string) (Stream, error) {
	id, err := n.remotePeer(peerID)
	if err != nil {
		return nil, err
	}
	if err := checkProtocol(proto); err != nil {
		return nil, err
	}
	// A peer reachable only through a circuit relay has a limited
	// connection; our protocols carry small frames and retry, so they may
	// use it (the relay resets it at its time or byte limit).
	ctx = network.WithAllowLimitedConn(ctx, proto)
	if err := n.ensureConnected(ctx, id); err != nil {
		return nil, err
	}
	s, err := n.host.NewStream(ctx, id, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("p2p: open %s stream to %s: %w", proto, short(peerID), streamError(err))
	}
	return stream{s}, nil
}

// remotePeer parses a peer id that must not be our own, on a live node.
func (n *Node) remotePeer(peerID string) (peer.ID, error) {
	if n.ctx.Err() != nil {
		return "", ErrClosed
	}
	id, err := parsePeerID(peerID)
	if err != nil {
		return "", err
	}
	if id == n.host.ID() {
		return "", fmt.Errorf("%w: that is this node", ErrBadPeerID)
	}
	return id, nil
}

// ensureConnected dials id through known addresses, then, if that fails and
// the DHT is on, through addresses the DHT finds (known ones may be stale).
func (n *Node) ensureConnected(ctx context.Context, id peer.ID) error {
	if n.host.Network().Connectedness(id) == network.Connected {
		return nil
	}
	known := len(n.host.Peerstore().Addrs(id)) > 0
	var dialErr error
	if known {
		dialErr = n.host.Connect(ctx, peer.AddrInfo{ID: id})
		if dialErr == nil {
			return nil
		}
	}
	if n.dht == nil || ctx.Err() != nil {
		if n.ctx.Err() != nil {
			return ErrClosed
		}
		if !known {
			return fmt.Errorf("%w: %s", ErrNoAddrs, short(id.String()))
		}
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, short(id.String()), dialErr)
	}
	n.awaitRoutingTable(ctx)
	ai, err := n.dht.FindPeer(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %s: dht lookup: %w", ErrUnreachable, short(id.String()), errors.Join(dialErr, err))
	}
	if err := n.host.Connect(ctx, ai); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, short(id.String()), err)
	}
	return nil
}

// ConnectedPeers returns the ids of all peers with an open connection.
func (n *Node) ConnectedPeers() []string {
	ps := n.host.Network().Peers()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// IsConnected reports whether there is an open connection to peerID. A
// malformed id is simply not connected.
func (n *Node) IsConnected(peerID string) bool {
	id, err := peer.Decode(peerID)
	if err != nil {
		return false
	}
	return n.host.Network().Connectedness(id) == network.Connected
}

// Close stops the node: bootstrap dialer, DHT, host, and waits for every
// goroutine the node started, including running OnConnected callbacks.
// Calling it again returns the first result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.closeEphemeral()
		var errs []error
		if n.lan != nil {
			errs = append(errs, n.lan.close())
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.relay != nil {
			errs = append(errs, n.relay.Close())
		}
		errs = append(errs, n.host.Close())
		closeServers(n.ptSrv)
		n.pts.close()
		if n.sub != nil {
			errs = append(errs, n.sub.Close())
		}
		n.wg.Wait()
		n.closeErr = errors.Join(errs...)
		n.log.Info("nodeClosed", "peer", short(n.host.ID().String()))
	})
	return n.closeErr
}
