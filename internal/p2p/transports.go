package p2p

// Censorship-resistant transports (DESIGN §6): secure WebSocket that looks
// like HTTPS to DPI, SOCKS5 dialing (Tor, a VPN, any proxy client) and
// pluggable-transport bridges (pt.go) for the TCP-based transports.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/samizdat-im/samizdat/internal/p2p/tlsface"
	"github.com/samizdat-im/samizdat/internal/p2p/webrtcpt"
	"github.com/samizdat-im/samizdat/internal/p2p/wss"
	"golang.org/x/net/proxy"
)

// The TLS face (package tlsface), for the app.
var (
	// TLSNames are the names a node picks from when given none.
	TLSNames = tlsface.Names
	// ErrTLSIdentity is returned for a malformed TLS identity.
	ErrTLSIdentity = tlsface.ErrIdentity
)

// CertRenewBefore is how long before expiry a node renews its certificate.
const CertRenewBefore = tlsface.RenewBefore

// NewECH makes an Encrypted Client Hello key whose ClientHellos show
// publicName (tlsface.NewECH); empty: one of ECHPublicNames.
func NewECH(publicName string) ([]byte, error) {
	if publicName == "" {
		publicName = tlsface.PickECHPublicName()
	}
	return tlsface.NewECH(publicName)
}

// ECHPublicName returns the public (cover) name of an ECH key, or an
// error if it is malformed.
func ECHPublicName(key []byte) (string, error) {
	e, err := tlsface.ParseECH(key)
	if err != nil {
		return "", err
	}
	return e.PublicName, nil
}

// PickTLSName returns a random name of TLSNames.
func PickTLSName() string { return tlsface.PickName() }

// NewTLSIdentity makes a TLS identity for name (tlsface.New).
func NewTLSIdentity(name string, seed []byte, now time.Time) ([]byte, error) {
	return tlsface.New(name, seed, now)
}

// TLSIdentityInfo reads an identity's name, expiry and site seed.
func TLSIdentityInfo(identity []byte) (name string, notAfter time.Time, seed []byte, err error) {
	return tlsface.Info(identity)
}

// transportOptions returns the libp2p transport options for cfg: TCP (with
// SOCKS5 or bridge dialers when configured), QUIC (unless SOCKS5 is set:
// UDP would bypass the proxy), and WebSocket with TLS (wss.go), whose
// listeners answer as self's static site to all but its own upgrade path.
// cfg.TLSName and cfg.TLSIdentity are set (New resolves them).
//
// wrtc, when not nil, adds WebRTC (/udp/PORT/webrtc, package webrtcpt),
// signalled through the node's connections (signal.go); not with SOCKS5.
func transportOptions(cfg Config, self peer.ID, g *gater, pts *ptClients, wrtc *webrtcpt.Holder) ([]libp2p.Option, error) {
	id, err := tlsface.Parse(cfg.TLSIdentity)
	if err != nil {
		return nil, err
	}
	srv := &tls.Config{Certificates: []tls.Certificate{id.Cert}}
	for i, k := range append([][]byte{cfg.ECH}, cfg.ECHAccept...) {
		if len(k) == 0 {
			continue
		}
		e, err := tlsface.ParseECH(k)
		if err != nil {
			return nil, err
		}
		e.Key.SendAsRetry = i == 0 // only the advertised key is offered to retry with
		srv.EncryptedClientHelloKeys = append(srv.EncryptedClientHelloKeys, e.Key)
	}
	// The peer is authenticated by the Noise handshake inside the TLS
	// tunnel; the certificate is camouflage, so it is not checked. ALPN as
	// Go's net/http client offers it, so that our ClientHello is that of
	// every Go HTTPS client (docs/CENSORSHIP.md); the server speaks only
	// HTTP/1.1 and picks it.
	cli := &tls.Config{InsecureSkipVerify: true, ServerName: cfg.TLSName, NextProtos: []string{"h2", "http/1.1"}}
	site := tlsface.Handler(tlsface.SiteFS(cfg.TLSName, id.Seed))
	d := &dialers{socks: cfg.SOCKS5, pts: pts}
	var tcpOpts []any
	if d.active() {
		tcpOpts = append(tcpOpts, tcp.WithDialerForAddr(d.forAddr))
	}
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport, tcpOpts...),
		libp2p.Transport(wss.New(self, g, srv, cli, site)),
	}
	if cfg.SOCKS5 == "" {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
		if wrtc != nil {
			opts = append(opts, libp2p.Transport(wrtc.Constructor()))
		}
	}
	return opts, nil
}

// resolveTLS fills cfg.TLSName and cfg.TLSIdentity: the name given, else
// the identity's, else one of TLSNames; a fresh identity when none is
// given or the one given is for another name.
func (c *Config) resolveTLS() error {
	if len(c.TLSIdentity) > 0 {
		name, _, _, err := TLSIdentityInfo(c.TLSIdentity)
		if err != nil {
			return err
		}
		if c.TLSName == "" {
			c.TLSName = name
		}
		if name == c.TLSName {
			return nil
		}
	}
	if c.TLSName == "" {
		c.TLSName = PickTLSName()
	}
	id, err := NewTLSIdentity(c.TLSName, nil, time.Now())
	if err != nil {
		return err
	}
	c.TLSIdentity = id
	return nil
}

// withSNI adds the node's TLS name to its secure WebSocket addresses, so
// that peers dialing them send a plausible SNI instead of none, and, with
// an ECH config list, the ECH twin of each (wss.ECHAddr).
func withSNI(name string, echList []byte, addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		s := a.String()
		if strings.Contains(s, "/tls/ws") && !strings.Contains(s, "/sni/") {
			if m, err := ma.NewMultiaddr(strings.Replace(s, "/tls/ws", "/tls/sni/"+name+"/ws", 1)); err == nil {
				a = m
			}
		}
		out = append(out, a)
		if echList != nil && strings.HasSuffix(a.String(), "/tls/sni/"+name+"/ws") {
			if m, err := wss.ECHAddr(a, echList); err == nil {
				out = append(out, m)
			}
		}
	}
	return out
}

// echConfigList returns the config list of an ECH key, nil without one.
func echConfigList(key []byte) []byte {
	if len(key) == 0 {
		return nil
	}
	e, err := tlsface.ParseECH(key)
	if err != nil {
		return nil
	}
	return e.ConfigList
}

// isECHAddr reports whether a is the ECH twin of a secure WebSocket
// address (wss.ECHAddr).
func isECHAddr(a ma.Multiaddr) bool {
	list, _ := wss.ECHConfigList(a)
	return list != nil
}

// preferECH leaves out the plain /tls/sni/NAME/ws addresses that have an
// ECH twin among addrs: dialing both would show NAME in the clear. A twin
// whose path is backing off (failing stands for itself, see dialTracer)
// does not: its config may be stale, or have been made up by whoever
// told us the address (peer exchange is not signed), or the network may
// drop ECH, and the node is still reachable without it.
func preferECH(addrs []ma.Multiaddr, backingOff func(ma.Multiaddr) bool) []ma.Multiaddr {
	var twins map[string]bool
	for _, a := range addrs {
		if list, plain := wss.ECHConfigList(a); list != nil && !backingOff(a) {
			if twins == nil {
				twins = map[string]bool{}
			}
			twins[plain.String()] = true
		}
	}
	if twins == nil {
		return addrs
	}
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if !twins[a.String()] {
			out = append(out, a)
		}
	}
	return out
}

// dialers picks how the TCP transport reaches an address: through a
// pluggable-transport bridge if the address is one, else through the SOCKS5
// proxy if configured, else directly.
type dialers struct {
	socks string
	pts   *ptClients
}

func (d *dialers) active() bool { return d.socks != "" || d.pts.hasBridges() }

func (d *dialers) forAddr(raddr ma.Multiaddr) (tcp.ContextDialer, error) {
	na, err := manet.ToNetAddr(raddr)
	if err != nil {
		return nil, err
	}
	if pd, ok := d.pts.dialerFor(na.String()); ok {
		return pd, nil
	}
	if d.socks != "" {
		return socksDialer(d.socks, nil)
	}
	return &net.Dialer{}, nil
}

// socksDialer dials through a SOCKS5 proxy at addr, with optional
// username/password authentication.
func socksDialer(addr string, auth *proxy.Auth) (tcp.ContextDialer, error) {
	d, err := proxy.SOCKS5("tcp", addr, auth, &net.Dialer{Timeout: dialTimeout})
	if err != nil {
		return nil, fmt.Errorf("p2p: socks5 %s: %w", addr, err)
	}
	cd, ok := d.(proxy.ContextDialer)
	if !ok {
		return nil, fmt.Errorf("p2p: socks5 %s: dialer without context", addr)
	}
	return ctxDialer{cd}, nil
}

type ctxDialer struct{ proxy.ContextDialer }

func (c ctxDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.ContextDialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	// The peer is at addr, not at the proxy: say so, so that the
	// connection's remote multiaddr (and the transport memory) name it.
	ra, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return conn, nil
	}
	return proxiedConn{Conn: conn, remote: ra}, nil
}

type proxiedConn struct {
	net.Conn
	remote net.Addr
}

func (p proxiedConn) RemoteAddr() net.Addr { return p.remote }

// TransportName names the transport of a multiaddr as `samizdat status`
// shows it: "quic", "tcp", "ws", "wss", "webrtc", "relay", or "obfs4"-style bridge
// names for bridged TCP.
func TransportName(addr string) string {
	switch {
	case strings.Contains(addr, "/p2p-circuit"):
		return "relay"
	case strings.Contains(addr, "/tls/") && strings.Contains(addr, "/ws"), strings.Contains(addr, "/wss"):
		return "wss"
	case strings.Contains(addr, "/ws"):
		return "ws"
	case strings.Contains(addr, "/webrtc"):
		return "webrtc"
	case strings.Contains(addr, "/quic"):
		return "quic"
	case strings.Contains(addr, "/tcp/"):
		return "tcp"
	}
	return "other"
}
