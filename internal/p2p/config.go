package p2p

import (
	"log/slog"
	"time"
)

// Defaults for the zero values of Config.
const (
	// DefaultConnLow and DefaultConnHigh are the connection manager
	// watermarks: above High, connections are trimmed down to Low.
	DefaultConnLow  = 100
	DefaultConnHigh = 400

	// DHTProtocolPrefix keeps our Kademlia DHT apart from the public IPFS
	// one (whose prefix is "/ipfs"): peers of the two never mix.
	DHTProtocolPrefix = "/samizdat"

	// ContactAddrTTL is how long addresses given by AddAddrs (from an invite
	// or a contact card) are remembered.
	ContactAddrTTL = 30 * 24 * time.Hour
)

// Config configures a Node. The zero value is a safe node: ephemeral key,
// listening nowhere, dialling nobody, no DHT, no mDNS, no UPnP/NAT-PMP, no
// relay service.
type Config struct {
	// PrivateKey is a libp2p-marshalled private key
	// (crypto.MarshalPrivateKey, see GenerateKey). Nil generates an
	// ephemeral Ed25519 key.
	PrivateKey []byte

	// ListenAddrs are multiaddrs to listen on, e.g. "/ip4/0.0.0.0/tcp/4001",
	// "/ip4/0.0.0.0/udp/4001/quic-v1", "/ip4/0.0.0.0/tcp/4002/ws". Empty
	// means listen nowhere (outbound only).
	ListenAddrs []string

	// BootstrapPeers are full multiaddrs ending in /p2p/<id>. They are the
	// only peers dialled at start; down peers are retried with backoff in the
	// background for the life of the node.
	BootstrapPeers []string

	// EnableDHT starts a Kademlia DHT with protocol prefix "/samizdat"
	// (never the public IPFS DHT).
	EnableDHT bool

	// DHTServer makes the DHT answer queries from other peers. False runs it
	// in auto mode: a client until the node learns it is publicly reachable.
	DHTServer bool

	// EnableMDNS announces the node on the local network (multicast DNS,
	// service MDNSServiceName, on every interface) and connects to the
	// samizdat peers found there: LAN discovery with no bootstrap peer and
	// no internet. Zero: off. New refuses it with LoopbackOnly
	// (ErrMDNSLoopback); tests enable it only inside network namespaces.
	EnableMDNS bool

	// EnableNATPortMap asks the router to forward a port (UPnP/NAT-PMP).
	// Zero: off.
	EnableNATPortMap bool

	// EnableRelayService makes the node a circuit relay v2 for others,
	// from the start (not only once AutoNAT finds it publicly reachable),
	// with libp2p's default limits per circuit. Zero: off. Every node can
	// dial relayed addresses; it is reachable through a relay only after
	// Node.ReserveRelay.
	EnableRelayService bool

	// StaticRelays are circuit relays (full multiaddrs ending in /p2p/<id>:
	// samizdat relays, mailbox hosts) on which the node books slots by
	// itself whenever it finds it is not publicly reachable (behind NAT),
	// advertising the relayed addresses in Addrs. Zero: none (ReserveRelay
	// still works).
	StaticRelays []string

	// ForcePrivate makes the node assume it is not publicly reachable, so
	// it uses StaticRelays at once instead of waiting for AutoNAT (tests; a
	// user who knows to be behind NAT). Zero: AutoNAT decides.
	ForcePrivate bool

	// EnableHolePunching upgrades relayed connections to direct ones when
	// both ends can (DCUtR). Zero: off.
	EnableHolePunching bool

	// LoopbackOnly refuses every dial to, accept from, and listen or
	// advertised address on anything but 127.0.0.0/8 and ::1. Tests and
	// local demos set it. Zero: off.
	LoopbackOnly bool

	// ConnLow and ConnHigh are the connection manager watermarks. Zero means
	// DefaultConnLow / DefaultConnHigh.
	ConnLow, ConnHigh int

	// Logger receives the node's logs. Nil discards them.
	Logger *slog.Logger

	// TLSName is the server name of the node's secure WebSocket listeners
	// (its certificate) and the SNI sent to peers whose addresses carry
	// none. Zero: TLSIdentity's name, else one of TLSNames drawn at random
	// (the app keeps the identity so that a node keeps its name). Never
	// resolved.
	TLSName string

	// TLSIdentity is the certificate, key and site seed of the secure
	// WebSocket listeners (NewTLSIdentity). Zero, or one made for another
	// name than TLSName: a fresh one for this run.
	TLSIdentity []byte

	// ECH is the node's Encrypted Client Hello key (NewECH), kept by the
	// app across restarts. With it, the secure WebSocket listeners accept
	// ECH and every /tls/sni/NAME/ws address gets an ECH twin carrying the
	// config (wss.ECHAddr), which new dialers prefer: their ClientHello
	// shows the config's public name, NAME travels encrypted. Zero: off.
	ECH []byte

	// ECHAccept are earlier ECH keys the listeners still accept but no
	// address advertises: contacts hold the node's addresses for up to
	// ContactAddrTTL, and one holding an old config must not be locked out
	// when the key changes or ECH is turned off. Zero: none.
	ECHAccept [][]byte

	// SOCKS5 is a proxy (host:port; Tor, a VPN client, sing-box…) every
	// TCP dial goes through. Only TCP addresses are dialled when it is set:
	// QUIC (UDP) and WebSocket (which libp2p dials by itself) would bypass
	// the proxy. Zero: dial directly.
	SOCKS5 string

	// STUN servers (HOST:PORT, IPs: never resolved) WebRTC asks for the
	// node's address as seen from outside. Zero: none (host candidates
	// only); no public server is ever used by default.
	STUN []string

	// PT configures pluggable transports (obfs4…) as managed children.
	// Zero: none.
	PT PTConfig

	// CachedPeers are entry points remembered from earlier runs
	// (Node.PeerCache): dialled like BootstrapPeers, but a malformed or
	// stale entry is skipped, not an error. Zero: none.
	CachedPeers []string

	// Gossip tunes gossipsub (pubsub.go). Zero: DefaultGossipParams.
	Gossip GossipParams

	// CountBandwidth counts the bytes of the node's streams by protocol
	// (Node.BandwidthByProtocol; the idle benchmark's breakdown). Zero:
	// off (the counter's meters tick every second).
	CountBandwidth bool

	// PreferTransports are transport names (see TransportName) that worked
	// before, best first: addresses of those transports are dialled first,
	// the others after a short delay. Zero: libp2p's default ranking.
	PreferTransports []string
}

func (c Config) connLimits() (low, high int) {
	low, high = c.ConnLow, c.ConnHigh
	if low <= 0 {
		low = DefaultConnLow
	}
	if high <= 0 {
		high = DefaultConnHigh
	}
	if high < low {
		high = low
	}
	return low, high
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}
