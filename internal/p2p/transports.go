package p2p

// Censorship-resistant transports (DESIGN §6): secure WebSocket that looks
// like HTTPS to DPI, SOCKS5 dialing (Tor, a VPN, any proxy client) and
// pluggable-transport bridges (pt.go) for the TCP-based transports.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ws "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/net/proxy"
)

// DefaultTLSName is the server name a node presents on its secure
// WebSocket listeners when Config.TLSName is empty, and the SNI it sends
// to peers whose addresses carry none. It is a name, never looked up: no
// DNS is needed to dial.
const DefaultTLSName = "www.samizdat.invalid"

// webPage is what a browser opening a node's HTTPS port sees: an ordinary
// page, so the port answers like any small web server.
const webPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Welcome</title></head>
<body><h1>It works</h1><p>This server is up.</p></body></html>
`

// transportOptions returns the libp2p transport options for cfg: TCP (with
// SOCKS5 or bridge dialers when configured), QUIC (unless SOCKS5 is set:
// UDP would bypass the proxy), and WebSocket with TLS.
func transportOptions(cfg Config, pts *ptClients) ([]libp2p.Option, error) {
	name := cfg.tlsName()
	srv, err := selfSignedTLS(name)
	if err != nil {
		return nil, err
	}
	// The peer is authenticated by the Noise handshake inside the TLS
	// tunnel; the TLS certificate is only camouflage, so it is not checked.
	cli := &tls.Config{InsecureSkipVerify: true, ServerName: name, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(webPage))
	})
	d := &dialers{socks: cfg.SOCKS5, pts: pts}
	var tcpOpts []any
	if d.active() {
		tcpOpts = append(tcpOpts, tcp.WithDialerForAddr(d.forAddr))
	}
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport, tcpOpts...),
		libp2p.Transport(ws.New,
			ws.WithTLSConfig(srv), ws.WithTLSClientConfig(cli), ws.WithHTTPHandler(page),
			ws.WithHTTPServerConfig(func(s *http.Server) { s.ReadHeaderTimeout = 10 * time.Second })),
	}
	if cfg.SOCKS5 == "" {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	return opts, nil
}

func (c Config) tlsName() string {
	if c.TLSName != "" {
		return c.TLSName
	}
	return DefaultTLSName
}

// withSNI adds the node's TLS name to its secure WebSocket addresses, so
// that peers dialing them send a plausible SNI instead of none.
func withSNI(name string, addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		s := a.String()
		if strings.Contains(s, "/tls/ws") && !strings.Contains(s, "/sni/") {
			if m, err := ma.NewMultiaddr(strings.Replace(s, "/tls/ws", "/tls/sni/"+name+"/ws", 1)); err == nil {
				a = m
			}
		}
		out = append(out, a)
	}
	return out
}

// selfSignedTLS makes a fresh self-signed certificate for name.
func selfSignedTLS(name string) (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("p2p: tls certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}, nil
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
// shows it: "quic", "tcp", "ws", "wss", "relay", or "obfs4"-style bridge
// names for bridged TCP.
func TransportName(addr string) string {
	switch {
	case strings.Contains(addr, "/p2p-circuit"):
		return "relay"
	case strings.Contains(addr, "/tls/") && strings.Contains(addr, "/ws"), strings.Contains(addr, "/wss"):
		return "wss"
	case strings.Contains(addr, "/ws"):
		return "ws"
	case strings.Contains(addr, "/quic"):
		return "quic"
	case strings.Contains(addr, "/tcp/"):
		return "tcp"
	}
	return "other"
}
