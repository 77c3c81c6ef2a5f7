// Package wss is the WebSocket transport (/ws and /tls/ws) of samizdat
// nodes, adapted from go-libp2p's
// p2p/transport/websocket (MIT/Apache-2.0) so that a node's HTTPS port
// resists active probing (issue 15): only an upgrade request for the
// node's secret path (Path, derived from its peer id, which every
// legitimate dialer knows) becomes a libp2p connection; every other request,
// WebSocket upgrades included, gets the node's static site, exactly as a
// static web server answers it. The stock transport upgrades any request,
// so a prober who knows the protocol would see a libp2p handshake.
package wss

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	ws "github.com/gorilla/websocket"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	mafmt "github.com/multiformats/go-multiaddr-fmt"
	manet "github.com/multiformats/go-multiaddr/net"
	mh "github.com/multiformats/go-multihash"

	"github.com/samizdat-im/samizdat/internal/p2p/acceptq"
)

// wsHandshakeTimeout bounds the WebSocket upgrade of a dial; the server
// side is bounded like any HTTP server's (ReadHeaderTimeout, IdleTimeout).
const (
	wsHandshakeTimeout = 15 * time.Second
	wsReadHeader       = 10 * time.Second
	wsIdle             = 60 * time.Second
)

// DiscardLog silences the HTTP server: a prober's bad handshakes are no
// business of the node's log.
var DiscardLog = log.New(io.Discard, "", 0)

var wsDialMatcher = mafmt.And(
	mafmt.Or(mafmt.IP, mafmt.DNS),
	mafmt.Base(ma.P_TCP),
	mafmt.Or(
		mafmt.Base(ma.P_WS),
		mafmt.And(mafmt.Base(ma.P_TLS), mafmt.Base(ma.P_SNI), mafmt.Base(ma.P_WS), mafmt.Base(ma.P_CERTHASH)),
		mafmt.And(mafmt.Or(mafmt.And(mafmt.Base(ma.P_TLS), mafmt.Base(ma.P_SNI)), mafmt.Base(ma.P_TLS)), mafmt.Base(ma.P_WS)),
		mafmt.Base(ma.P_WSS)))

// ECH addresses. Multiaddr has no component for an Encrypted Client Hello
// config, so a node with ECH (--ech) advertises a twin of each of its
// /tls/sni/NAME/ws addresses with one more component,
// /certhash/<identity multihash of its ECHConfigList> (an identity
// multihash holds any bytes; a certhash after /ws means nothing to the
// stock transports). Old nodes parse the twin but have no transport that
// dials it, so they use the plain address; new ones prefer the twin
// (p2p's dial ranker) and dial it with ECH: the ClientHello shows the
// config's public name, NAME travels encrypted.

// ECHAddr returns the ECH twin of a /tls/sni/NAME/ws address.
func ECHAddr(a ma.Multiaddr, configList []byte) (ma.Multiaddr, error) {
	h, err := mh.Encode(configList, mh.IDENTITY)
	if err != nil {
		return nil, err
	}
	c, err := ma.NewComponent("certhash", multibase64url(h))
	if err != nil {
		return nil, err
	}
	return a.AppendComponent(c), nil
}

// ECHConfigList returns the ECHConfigList of an ECH twin address and the
// plain address it is the twin of, or nil if a is no ECH address.
func ECHConfigList(a ma.Multiaddr) (list []byte, plain ma.Multiaddr) {
	rest, last := ma.SplitLast(a)
	if last == nil || last.Protocol().Code != ma.P_CERTHASH {
		return nil, a
	}
	d, err := mh.Decode(last.RawValue())
	if err != nil || d.Code != mh.IDENTITY || len(d.Digest) == 0 {
		return nil, a
	}
	return d.Digest, rest
}

// multibase64url is multibase's base64url form ("u" + unpadded base64url),
// what the certhash component's string form is.
func multibase64url(b []byte) string { return "u" + base64.RawURLEncoding.EncodeToString(b) }

// errECHRejected is returned when a server refuses the ECH config of its
// address.
var errECHRejected = errors.New("p2p: the server rejected encrypted client hello")

// Gater is the part of libp2p's connection gater the transport consults
// for a connection that upgrades.
type Gater interface {
	InterceptAccept(network.ConnMultiaddrs) bool
}

// Path is the upgrade path of the node with peer id id: it looks like a
// hashed asset name and says nothing of the software.
func Path(id peer.ID) string {
	h := sha256.Sum256(append([]byte("ws upgrade path v1\x00"), id...))
	return "/" + hex.EncodeToString(h[:12])
}

// wsTransport is a libp2p transport for /ws and /tls/ws addresses.
type wsTransport struct {
	up    transport.Upgrader
	rcmgr network.ResourceManager
	gater Gater
	self  peer.ID
	srv   *tls.Config // listeners' TLS
	cli   *tls.Config // dialers' TLS (ServerName from the address's /sni)
	site  http.Handler
}

var _ transport.Transport = (*wsTransport)(nil)

// New returns the constructor libp2p.Transport takes: self is the
// node's peer id, g may be nil, srv is the listeners' TLS, cli the
// dialers', site what every request but an upgrade on Path(self) gets.
func New(self peer.ID, g Gater, srv, cli *tls.Config, site http.Handler) func(transport.Upgrader, network.ResourceManager) (*wsTransport, error) {
	return func(u transport.Upgrader, rm network.ResourceManager) (*wsTransport, error) {
		if rm == nil {
			rm = &network.NullResourceManager{}
		}
		return &wsTransport{up: u, rcmgr: rm, gater: g, self: self, srv: srv, cli: cli, site: site}, nil
	}
}

func (t *wsTransport) CanDial(a ma.Multiaddr) bool { return wsDialMatcher.Matches(a) }
func (t *wsTransport) Protocols() []int            { return []int{ma.P_WS, ma.P_WSS} }
func (t *wsTransport) Proxy() bool                 { return false }

// wsParts is a WebSocket multiaddr taken apart.
type wsParts struct {
	secure bool
	sni    string
	ech    []byte       // ECHConfigList of an ECH address (ECHAddr)
	rest   ma.Multiaddr // before /tls[/sni/X]/ws, /ws or /wss
}

func parseWSAddr(a ma.Multiaddr) (wsParts, error) {
	var out wsParts
	if list, plain := ECHConfigList(a); list != nil {
		out.ech, a = list, plain
	}
	s, ok := strings.CutSuffix(a.String(), "/wss")
	if ok {
		out.secure = true
	} else if s, ok = strings.CutSuffix(s, "/ws"); !ok {
		return out, fmt.Errorf("p2p: not a websocket address: %s", a)
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return out, err
	}
	for {
		rest, last := ma.SplitLast(m)
		if last == nil || len(rest) == 0 {
			break
		}
		switch last.Protocol().Code {
		case ma.P_SNI:
			out.sni = last.Value()
			m = rest
			continue
		case ma.P_TLS:
			out.secure = true
			m = rest
		}
		break
	}
	out.rest = m
	return out, nil
}

func (w wsParts) multiaddr() ma.Multiaddr {
	s := w.rest.String()
	if w.secure {
		s += "/tls"
		if w.sni != "" {
			s += "/sni/" + w.sni
		}
	}
	m, _ := ma.NewMultiaddr(s + "/ws")
	return m
}

func (t *wsTransport) Resolve(_ context.Context, a ma.Multiaddr) ([]ma.Multiaddr, error) {
	return []ma.Multiaddr{a}, nil
}

func (t *wsTransport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	scope, err := t.rcmgr.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, err
	}
	c, err := t.dial(ctx, raddr, p, scope)
	if err != nil {
		scope.Done()
		return nil, err
	}
	cc, err := t.up.Upgrade(ctx, t, c, network.DirOutbound, p, scope)
	if err != nil {
		return nil, err
	}
	return acceptq.NamedConn(cc, "websocket"), nil
}

func (t *wsTransport) dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID, scope network.ConnManagementScope) (manet.Conn, error) {
	wa, err := parseWSAddr(raddr)
	if err != nil {
		return nil, err
	}
	_, hostport, err := manet.DialArgs(wa.rest)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "ws", Host: hostport, Path: Path(p)}
	d := ws.Dialer{
		HandshakeTimeout: wsHandshakeTimeout,
		// Never a proxy from the environment: SOCKS5 is configured explicitly.
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, hostport)
		},
	}
	if wa.secure {
		u.Scheme = "wss"
		cfg := t.cli.Clone()
		if wa.sni != "" {
			cfg.ServerName = wa.sni
			_, port, _ := net.SplitHostPort(hostport)
			u.Host = net.JoinHostPort(wa.sni, port)
		}
		if wa.ech != nil {
			if wa.sni == "" {
				return nil, errors.New("p2p: ech address without a server name")
			}
			cfg.EncryptedClientHelloConfigList = wa.ech
			cfg.MinVersion = tls.VersionTLS13
			// A server that rejects our ECH config (its key changed, or
			// someone else answers) fails the dial: with the certificate
			// being camouflage, there is nothing to verify, and no retry
			// in the clear.
			cfg.EncryptedClientHelloRejectionVerify = func(tls.ConnectionState) error { return errECHRejected }
		}
		d.TLSClientConfig = cfg
	}
	raw, _, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		return nil, err
	}
	return newWSConn(raw, wa.secure, scope)
}

func (t *wsTransport) Listen(a ma.Multiaddr) (transport.Listener, error) {
	wa, err := parseWSAddr(a)
	if err != nil {
		return nil, err
	}
	if wa.secure && t.srv == nil {
		return nil, fmt.Errorf("p2p: cannot listen on %s without TLS", a)
	}
	// The raw TCP listener, not libp2p's gated one: the resource manager
	// limits and rate-limits inbound connections per IP, and a prober
	// opening many connections would see it cut them off, which no static
	// web server does. A connection enters libp2p's accounting (and the
	// gater) only once it upgrades on the node's own path.
	mal, err := manet.Listen(wa.rest)
	if err != nil {
		return nil, err
	}
	wa.rest = mal.Multiaddr()
	l := &wsListener{
		t:      t,
		raw:    mal,
		laddr:  wa.multiaddr(),
		secure: wa.secure,
		path:   Path(t.self),
		site:   t.site,
		closed: make(chan struct{}),
		up:     ws.Upgrader{CheckOrigin: func(*http.Request) bool { return true }, HandshakeTimeout: wsHandshakeTimeout},
	}
	l.q = acceptq.New(t.gater, t.rcmgr, true, l.closed)
	// An HTTP/1.1 server like a small static site's: no HTTP/2 (WebSocket
	// needs HTTP/1.1 and a server that negotiates h2 for browsers but not
	// for us would tell the two apart), usual timeouts, no error log.
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	l.server = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: wsReadHeader,
		IdleTimeout:       wsIdle,
		Protocols:         protos,
		ErrorLog:          DiscardLog,
	}
	if wa.secure {
		l.server.TLSConfig = t.srv.Clone()
	}
	go l.serve()
	return acceptq.Named(t.up.UpgradeGatedMaListener(t, l), "websocket"), nil
}

type wsListener struct {
	t      *wsTransport
	raw    manet.Listener
	laddr  ma.Multiaddr
	secure bool
	path   string
	site   http.Handler
	server *http.Server
	up     ws.Upgrader
	q      *acceptq.Queue

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

var _ transport.GatedMaListener = (*wsListener)(nil)

func (l *wsListener) serve() {
	defer close(l.closed)
	nl := manet.NetListener(l.raw)
	if l.secure {
		_ = l.server.ServeTLS(nl, "", "")
	} else {
		_ = l.server.Serve(nl)
	}
}

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.path || !ws.IsWebSocketUpgrade(r) {
		l.site.ServeHTTP(w, r)
		return
	}
	raw, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	c, err := newWSConn(raw, l.secure, nil)
	if err != nil {
		raw.Close()
		return
	}
	l.q.Admit(c)
}

func (l *wsListener) Accept() (manet.Conn, network.ConnManagementScope, error) {
	return l.q.Accept()
}

func (l *wsListener) Addr() net.Addr          { return l.raw.Addr() }
func (l *wsListener) Multiaddr() ma.Multiaddr { return l.laddr }

func (l *wsListener) Close() error {
	l.closeOnce.Do(func() {
		err1 := l.raw.Close()
		err2 := l.server.Close()
		<-l.closed
		l.closeErr = errors.Join(err1, err2)
	})
	return l.closeErr
}

// wsConn is a net.Conn over WebSocket binary messages.
type wsConn struct {
	*ws.Conn
	scope         network.ConnManagementScope
	laddr, raddr  ma.Multiaddr
	reader        io.Reader
	rmu, wmu      sync.Mutex
	closeOnceFunc func() error
}

var _ manet.Conn = (*wsConn)(nil)

// SetScope gives c the resource scope it ends when it closes.
func (c *wsConn) SetScope(s network.ConnManagementScope) { c.scope = s }

func newWSConn(raw *ws.Conn, secure bool, scope network.ConnManagementScope) (*wsConn, error) {
	suffix := "/ws"
	if secure {
		suffix = "/wss"
	}
	toMA := func(a net.Addr) (ma.Multiaddr, error) {
		m, err := manet.FromNetAddr(a)
		if err != nil {
			return nil, err
		}
		return ma.NewMultiaddr(m.String() + suffix)
	}
	la, err := toMA(raw.LocalAddr())
	if err != nil {
		return nil, err
	}
	ra, err := toMA(raw.RemoteAddr())
	if err != nil {
		return nil, err
	}
	c := &wsConn{Conn: raw, scope: scope, laddr: la, raddr: ra}
	c.closeOnceFunc = sync.OnceValue(func() error {
		err0 := raw.SetReadDeadline(time.Now())
		err1 := raw.WriteControl(ws.CloseMessage, ws.FormatCloseMessage(ws.CloseNormalClosure, ""), time.Now().Add(100*time.Millisecond))
		err := errors.Join(err0, err1, raw.Close())
		if c.scope != nil {
			c.scope.Done() // idempotent; the upgrader may have ended it
		}
		return err
	})
	return c, nil
}

func (c *wsConn) LocalMultiaddr() ma.Multiaddr  { return c.laddr }
func (c *wsConn) RemoteMultiaddr() ma.Multiaddr { return c.raddr }

func (c *wsConn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.reader == nil {
			t, r, err := c.Conn.NextReader()
			if err != nil {
				var ce *ws.CloseError
				if errors.As(err, &ce) && (ce.Code == ws.CloseNormalClosure || ce.Code == ws.CloseNoStatusReceived) {
					return 0, io.EOF
				}
				return 0, err
			}
			if t == ws.CloseMessage {
				return 0, io.EOF
			}
			c.reader = r
		}
		n, err := c.reader.Read(b)
		if err == io.EOF {
			c.reader = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Conn.WriteMessage(ws.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *wsConn) Close() error { return c.closeOnceFunc() }

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}
