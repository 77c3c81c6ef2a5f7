// Package webrtcpt is a libp2p transport that looks like a video call
// (issue 15): a WebRTC data channel (ICE with STUN, DTLS, SCTP over UDP,
// github.com/pion/webrtc) carrying an ordinary libp2p connection (Noise
// and yamux, through the upgrader, as over TCP).
//
// Addresses are /ip4/IP/udp/PORT/webrtc: a listener answers on that one
// UDP port (pion's ICE UDP mux). The offer and answer (SDP) are not sent
// to that port: they travel through a Signaller, a libp2p stream to the
// peer itself or to any peer already connected to both (the way Snowflake
// uses a broker), so they are inside an encrypted connection. What crosses
// the wire in the clear is only STUN with random ICE credentials, and a
// DTLS handshake with a fresh self-signed certificate named "WebRTC", as
// browsers make: nothing constant, nothing naming the software. libp2p's
// own webrtc-direct puts the constant ufrag "libp2p+webrtc+v1" in every
// STUN packet; this transport does not use it.
//
// No STUN server is used unless one is configured; mDNS candidates are
// off; with LoopbackOnly only loopback candidates are gathered.
package webrtcpt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	mafmt "github.com/multiformats/go-multiaddr-fmt"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/samizdat-im/samizdat/internal/p2p/acceptq"
)

// Limits of a connection attempt.
const (
	// MaxSDP bounds an offer or answer.
	MaxSDP = 16 << 10
	// openTimeout bounds ICE, DTLS and SCTP after the answer.
	openTimeout = 20 * time.Second
	// maxPending bounds the answers waiting for their dialer.
	maxPending = 32
)

// Name is the transport's name in `samizdat status`.
const Name = "webrtc"

// ErrNoListener is returned by Answer when the node does not listen on
// WebRTC.
var ErrNoListener = errors.New("webrtc: not listening")

// A Signaller carries an offer to peer p and returns its answer.
type Signaller func(ctx context.Context, p peer.ID, offer string) (answer string, err error)

// Gater is the part of libp2p's connection gater consulted for an
// inbound connection.
type Gater interface {
	InterceptAccept(network.ConnMultiaddrs) bool
}

// Config configures the transport.
type Config struct {
	// STUN servers, as HOST:PORT (never looked up: give IPs). Zero: none.
	STUN []string
	// LoopbackOnly gathers only loopback candidates (tests, demos).
	LoopbackOnly bool
	// Gater may be nil.
	Gater Gater
}

var dialMatcher = mafmt.And(mafmt.UDP, mafmt.Base(ma.P_WEBRTC))

// Matches tells whether a is a WebRTC address of this transport.
func Matches(a ma.Multiaddr) bool { return dialMatcher.Matches(a) }

// Holder ties the transport libp2p constructs to the node: its signaller
// (set once the host exists) and the answering side of signalling.
type Holder struct {
	mu     sync.Mutex
	t      *Transport
	signal Signaller
	cfg    Config
}

// NewHolder returns a holder for a transport configured by cfg.
func NewHolder(cfg Config) *Holder { return &Holder{cfg: cfg} }

// Constructor is what libp2p.Transport takes.
func (h *Holder) Constructor() func(transport.Upgrader, network.ResourceManager) (*Transport, error) {
	return func(u transport.Upgrader, rm network.ResourceManager) (*Transport, error) {
		if rm == nil {
			rm = &network.NullResourceManager{}
		}
		t := &Transport{up: u, rcmgr: rm, cfg: h.cfg, h: h, pending: make(chan struct{}, maxPending)}
		h.mu.Lock()
		h.t = t
		h.mu.Unlock()
		return t, nil
	}
}

// SetSignaller sets how offers reach peers.
func (h *Holder) SetSignaller(s Signaller) {
	h.mu.Lock()
	h.signal = s
	h.mu.Unlock()
}

func (h *Holder) signaller() Signaller {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.signal
}

// Answer answers an offer that came through signalling, if the node
// listens on WebRTC; the connection then arrives on the listener.
func (h *Holder) Answer(ctx context.Context, offer string) (string, error) {
	h.mu.Lock()
	t := h.t
	h.mu.Unlock()
	if t == nil {
		return "", ErrNoListener
	}
	return t.answer(ctx, offer)
}

// Transport is the libp2p transport.
type Transport struct {
	up      transport.Upgrader
	rcmgr   network.ResourceManager
	cfg     Config
	h       *Holder
	pending chan struct{}

	mu        sync.Mutex
	listeners []*listener
}

var _ transport.Transport = (*Transport)(nil)

func (t *Transport) CanDial(a ma.Multiaddr) bool { return Matches(a) }
func (t *Transport) Protocols() []int            { return []int{ma.P_WEBRTC} }
func (t *Transport) Proxy() bool                 { return false }

// settings are the ICE/DTLS/SCTP settings of every peer connection.
func (t *Transport) settings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.EnableDataChannelBlockWrite(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetICETimeouts(5*time.Second, 15*time.Second, 2*time.Second)
	se.SetSTUNGatherTimeout(3 * time.Second)
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	se.LoggerFactory = lf
	if t.cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	return se
}

func (t *Transport) rtcConfig() webrtc.Configuration {
	var c webrtc.Configuration
	for _, s := range t.cfg.STUN {
		c.ICEServers = append(c.ICEServers, webrtc.ICEServer{URLs: []string{"stun:" + s}})
	}
	return c
}

// newPeerConnection makes a peer connection with its negotiated data
// channel (id 0: no DCEP message, both ends create it).
func newPeerConnection(api *webrtc.API, cfg webrtc.Configuration) (*webrtc.PeerConnection, *webrtc.DataChannel, chan struct{}, error) {
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	neg, id := true, uint16(0)
	dc, err := pc.CreateDataChannel("", &webrtc.DataChannelInit{Negotiated: &neg, ID: &id})
	if err != nil {
		_ = closePC(pc)
		return nil, nil, nil, err
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	return pc, dc, opened, nil
}

// gather sets the local description and waits until every candidate is
// in it (no trickle: one offer, one answer).
func gather(ctx context.Context, pc *webrtc.PeerConnection, d webrtc.SessionDescription) (string, error) {
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return "", err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

func (t *Transport) Resolve(_ context.Context, a ma.Multiaddr) ([]ma.Multiaddr, error) {
	return []ma.Multiaddr{a}, nil
}

func (t *Transport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	sig := t.h.signaller()
	if sig == nil {
		return nil, errors.New("webrtc: no signalling")
	}
	scope, err := t.rcmgr.OpenConnection(network.DirOutbound, false, raddr)
	if err != nil {
		return nil, err
	}
	c, err := t.dial(ctx, sig, p)
	if err != nil {
		scope.Done()
		return nil, err
	}
	c.scope = scope
	cc, err := t.up.Upgrade(ctx, t, c, network.DirOutbound, p, scope)
	if err != nil {
		return nil, err
	}
	return acceptq.NamedConn(cc, Name), nil
}

func (t *Transport) dial(ctx context.Context, sig Signaller, p peer.ID) (*conn, error) {
	se := t.settings()
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, dc, opened, err := newPeerConnection(api, t.rtcConfig())
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = closePC(pc)
		}
	}()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	sdp, err := gather(ctx, pc, offer)
	if err != nil {
		return nil, err
	}
	answer, err := sig(ctx, p, sdp)
	if err != nil {
		return nil, fmt.Errorf("webrtc: signalling: %w", err)
	}
	if len(answer) > MaxSDP {
		return nil, errors.New("webrtc: answer too large")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return nil, fmt.Errorf("webrtc: answer: %w", err)
	}
	c, err := awaitOpen(ctx, pc, dc, opened)
	if err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// awaitOpen waits for the data channel to open and wraps it.
func awaitOpen(ctx context.Context, pc *webrtc.PeerConnection, dc *webrtc.DataChannel, opened chan struct{}) (*conn, error) {
	failed := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			once.Do(func() { close(failed) })
		}
	})
	timer := time.NewTimer(openTimeout)
	defer timer.Stop()
	select {
	case <-opened:
	case <-failed:
		return nil, errors.New("webrtc: connection failed")
	case <-timer.C:
		return nil, errors.New("webrtc: timed out opening the connection")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rwc, err := dc.DetachWithDeadline()
	if err != nil {
		return nil, err
	}
	c, err := newConn(pc, rwc)
	if err != nil {
		_ = rwc.Close()
		return nil, err
	}
	// Once up, a failed or closed ICE/DTLS ends the connection.
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			go c.Close()
		}
	})
	return c, nil
}

func (t *Transport) Listen(a ma.Multiaddr) (transport.Listener, error) {
	if !Matches(a) {
		return nil, fmt.Errorf("webrtc: cannot listen on %s", a)
	}
	udp, _ := ma.SplitLast(a)
	network, hostport, err := manet.DialArgs(udp)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr(network, hostport)
	if err != nil {
		return nil, err
	}
	pconn, err := net.ListenUDP(network, ua)
	if err != nil {
		return nil, err
	}
	laddr, err := manet.FromNetAddr(pconn.LocalAddr())
	if err != nil {
		pconn.Close()
		return nil, err
	}
	se := t.settings()
	mux := webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("mux"), pconn)
	se.SetICEUDPMux(mux)
	l := &listener{
		t:      t,
		api:    webrtc.NewAPI(webrtc.WithSettingEngine(se)),
		mux:    mux,
		pconn:  pconn,
		laddr:  laddr.Encapsulate(ma.StringCast("/webrtc")),
		closed: make(chan struct{}),
	}
	l.q = acceptq.New(t.cfg.Gater, t.rcmgr, false, l.closed)
	t.mu.Lock()
	t.listeners = append(t.listeners, l)
	t.mu.Unlock()
	return acceptq.Named(t.up.UpgradeGatedMaListener(t, l), Name), nil
}

// answer answers an offer on the first listener.
func (t *Transport) answer(ctx context.Context, offer string) (string, error) {
	t.mu.Lock()
	var l *listener
	if len(t.listeners) > 0 {
		l = t.listeners[0]
	}
	t.mu.Unlock()
	if l == nil {
		return "", ErrNoListener
	}
	if len(offer) > MaxSDP {
		return "", errors.New("webrtc: offer too large")
	}
	select {
	case t.pending <- struct{}{}:
	default:
		return "", errors.New("webrtc: too many pending connections")
	}
	pc, dc, opened, err := newPeerConnection(l.api, t.rtcConfig())
	if err != nil {
		<-t.pending
		return "", err
	}
	fail := func(err error) (string, error) {
		_ = closePC(pc)
		<-t.pending
		return "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(fmt.Errorf("webrtc: offer: %w", err))
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(err)
	}
	sdp, err := gather(ctx, pc, ans)
	if err != nil {
		return fail(err)
	}
	go l.await(pc, dc, opened)
	return sdp, nil
}

func (t *Transport) removeListener(l *listener) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, x := range t.listeners {
		if x == l {
			t.listeners = append(t.listeners[:i], t.listeners[i+1:]...)
			return
		}
	}
}

type listener struct {
	t     *Transport
	api   *webrtc.API
	mux   ice.UDPMux
	pconn net.PacketConn
	laddr ma.Multiaddr
	q     *acceptq.Queue

	closeOnce sync.Once
	closed    chan struct{}
}

var _ transport.GatedMaListener = (*listener)(nil)

// await hands an answered connection to Accept once its data channel is
// open, or drops it.
func (l *listener) await(pc *webrtc.PeerConnection, dc *webrtc.DataChannel, opened chan struct{}) {
	defer func() { <-l.t.pending }()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-l.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer cancel()
	c, err := awaitOpen(ctx, pc, dc, opened)
	if err != nil {
		_ = closePC(pc)
		return
	}
	l.q.Admit(c)
}

func (l *listener) Accept() (manet.Conn, network.ConnManagementScope, error) {
	return l.q.Accept()
}

func (l *listener) Addr() net.Addr          { return l.pconn.LocalAddr() }
func (l *listener) Multiaddr() ma.Multiaddr { return l.laddr }

func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		l.t.removeListener(l)
		err = l.mux.Close() // closes pconn too
	})
	return err
}
