package p2p

import (
	"errors"

	"github.com/libp2p/go-libp2p/core/network"
)

var (
	// ErrBadAddr is returned when a multiaddr cannot be parsed, names a
	// different peer than the one it is used for, lacks a required /p2p
	// component, or is not allowed by the configuration (DNS names, and
	// non-loopback addresses under Config.LoopbackOnly).
	ErrBadAddr = errors.New("p2p: bad multiaddr")

	// ErrBadPeerID is returned when a peer id cannot be parsed, or when an
	// operation names the node itself as the remote peer.
	ErrBadPeerID = errors.New("p2p: bad peer id")

	// ErrBadKey is returned by PeerIDFromKey and New when the private key
	// bytes are not a libp2p-marshalled private key.
	ErrBadKey = errors.New("p2p: bad private key")

	// ErrBadProtocol is returned by Handle and OpenStream when a protocol id
	// is empty or does not start with "/".
	ErrBadProtocol = errors.New("p2p: bad protocol id")

	// ErrListen is returned by New when none of Config.ListenAddrs could be
	// listened on (for example the port is taken); a failure of only some of
	// them is logged.
	ErrListen = errors.New("p2p: cannot listen on any address")

	// ErrNoDHT is returned by FindPeer, PutValue and GetValue when the node
	// was started without Config.EnableDHT.
	ErrNoDHT = errors.New("p2p: dht is disabled")

	// ErrNoAddrs is returned by Connect and OpenStream when no address is
	// known for the peer and the DHT is disabled; pass addresses (from an
	// invite or contact card) with AddAddrs or Connect.
	ErrNoAddrs = errors.New("p2p: no known address for peer")

	// ErrUnreachable is returned by Connect and OpenStream when every known
	// address of the peer failed to dial; the peer may be offline.
	ErrUnreachable = errors.New("p2p: peer unreachable")

	// ErrNotFound is returned by FindPeer and GetValue when the DHT has no
	// record of the peer or key.
	ErrNotFound = errors.New("p2p: not found in dht")

	// ErrProtocolNotSupported is returned by OpenStream when the remote peer
	// does not handle the requested protocol (for example an older version).
	ErrProtocolNotSupported = errors.New("p2p: protocol not supported by peer")

	// ErrBadRecord is returned by PutValue (and used by the DHT validator)
	// when a contact-card record is larger than MaxCardSize or shorter than
	// its 8-byte version.
	ErrBadRecord = errors.New("p2p: bad dht record")

	// ErrBadRecordKey is returned by PutValue and GetValue when the key is
	// not in a namespace this node validates (see CardNamespace).
	ErrBadRecordKey = errors.New("p2p: bad dht record key")

	// ErrDNSDisabled is wrapped by errors for addresses that need a DNS
	// lookup: samizdat never resolves names (DESIGN.md §6).
	ErrDNSDisabled = errors.New("p2p: dns resolution is disabled")

	// ErrMDNSLoopback is returned by New when Config.EnableMDNS is set
	// together with LoopbackOnly: mDNS multicasts on the real interfaces,
	// which loopback-only nodes (tests, demos) must never touch.
	ErrMDNSLoopback = errors.New("p2p: mdns cannot run on a loopback-only node (it multicasts on the real interfaces)")

	// ErrClosed is returned by operations on a Node after Close.
	ErrClosed = errors.New("p2p: node closed")
)

// IsReset reports whether err is a stream reset by either end (libp2p's
// network.ErrReset, which its StreamError unwraps to), so that callers
// above the transport need not match the error's text.
func IsReset(err error) bool { return errors.Is(err, network.ErrReset) }
