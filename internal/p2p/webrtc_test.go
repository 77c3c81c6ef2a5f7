package p2p

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p/webrtcpt"
)

const webrtcAddr = "/ip4/127.0.0.1/udp/0/webrtc"

func webrtcAddrOf(t *testing.T, n *Node) string {
	t.Helper()
	for _, a := range n.Addrs() {
		if strings.Contains(a, "/webrtc/") {
			return a
		}
	}
	t.Fatalf("no /webrtc address in %v", n.Addrs())
	return ""
}

// Carol listens on WebRTC only. Alice, who shares a connected peer (bob,
// the broker) with her, reaches her over WebRTC: the offer and answer go
// through bob, the connection then runs directly over UDP.
func TestWebRTCSignalledThroughBroker(t *testing.T) {
	bob := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	carol := newTestNode(t, Config{ListenAddrs: []string{webrtcAddr}})
	alice := newTestNode(t, Config{})
	addr := webrtcAddrOf(t, carol)

	// Without a peer connected to dora, there is no route for the offer.
	dora := newTestNode(t, Config{ListenAddrs: []string{webrtcAddr}})
	err := alice.Connect(testCtx(t, 20*time.Second), dora.PeerID(), []string{webrtcAddrOf(t, dora)})
	if err == nil || !strings.Contains(err.Error(), "signalling") {
		t.Fatalf("connect with no broker: %v, want a signalling error", err)
	}

	if err := carol.Connect(testCtx(t, 10*time.Second), bob.PeerID(), bob.Addrs()); err != nil {
		t.Fatal(err)
	}
	// Alice dials carol while she is not yet connected to bob (a node
	// just started): the offer waits for a broker to connect.
	dialed := make(chan error, 1)
	go func() { dialed <- alice.Connect(testCtx(t, 30*time.Second), carol.PeerID(), []string{addr}) }()
	if err := alice.Connect(testCtx(t, 10*time.Second), bob.PeerID(), bob.Addrs()); err != nil {
		t.Fatal(err)
	}
	if err := <-dialed; err != nil {
		t.Fatalf("connect over webrtc: %v", err)
	}
	echoed(t, alice, carol)
	if got := alice.Transports(); !hasOpen(got, "webrtc") {
		t.Fatalf("alice's transports: %+v, want webrtc open", got)
	}
	if got := carol.Transports(); !hasOpen(got, "webrtc") {
		t.Fatalf("carol's transports: %+v, want webrtc open", got)
	}

	// A large transfer both ways: the byte stream over data-channel
	// messages keeps order and content.
	carol.Handle("/test/bulk/1", func(s Stream) { _, _ = io.Copy(s, s); s.Close() })
	s, err := alice.OpenStream(testCtx(t, 20*time.Second), carol.PeerID(), "/test/bulk/1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := make([]byte, 3<<20)
	_, _ = rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(want)
		errc <- errors.Join(err, s.CloseWrite())
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("bulk echo: got %d bytes, want %d, equal=false", len(got), len(want))
	}
}

func hasOpen(ts []TransportUse, name string) bool {
	for _, t := range ts {
		if t.Name == name && t.Open > 0 {
			return true
		}
	}
	return false
}

// webrtcBenchPair is carol on WebRTC only and alice connected to her over
// it, signalled through bob.
func webrtcBenchPair(b *testing.B) (alice, carol *Node) {
	b.Helper()
	bob := newTestNode(b, Config{ListenAddrs: []string{tcpAddr}})
	carol = newTestNode(b, Config{ListenAddrs: []string{webrtcAddr}})
	alice = newTestNode(b, Config{})
	for _, n := range []*Node{alice, carol} {
		if err := n.Connect(testCtx(b, 10*time.Second), bob.PeerID(), bob.Addrs()); err != nil {
			b.Fatal(err)
		}
	}
	return alice, carol
}

// BenchmarkWebRTCRoundTrip is BenchmarkStreamRoundTrip over WebRTC: one
// long-lived stream, 100 bytes echoed per op.
func BenchmarkWebRTCRoundTrip(b *testing.B) {
	alice, carol := webrtcBenchPair(b)
	carol.Handle(EchoProtocol, EchoHandler)
	var addr string
	for _, a := range carol.Addrs() {
		if strings.Contains(a, "/webrtc/") {
			addr = a
		}
	}
	if err := alice.Connect(testCtx(b, 30*time.Second), carol.PeerID(), []string{addr}); err != nil {
		b.Fatal(err)
	}
	s, err := alice.OpenStream(testCtx(b, time.Minute), carol.PeerID(), EchoProtocol)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	msg, reply := make([]byte, 100), make([]byte, 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := EchoRoundTrip(s, msg, reply); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebRTCConnect is one WebRTC connection per op: offer and answer
// through the broker, ICE, DTLS, SCTP, then Noise and yamux; closed after.
func BenchmarkWebRTCConnect(b *testing.B) {
	alice, carol := webrtcBenchPair(b)
	var addr string
	for _, a := range carol.Addrs() {
		if strings.Contains(a, "/webrtc/") {
			addr = a
		}
	}
	for b.Loop() {
		if err := alice.Connect(testCtx(b, 30*time.Second), carol.PeerID(), []string{addr}); err != nil {
			b.Fatal(err)
		}
		if err := alice.host.Network().ClosePeer(carol.host.ID()); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSignalRequest: the signalling request decoder never panics and
// keeps its bounds: a known kind, a valid target, an offer of at most
// MaxSDP bytes.
func FuzzSignalRequest(f *testing.F) {
	self := mustPeer(f, "12D3KooWM6Bc72N3fWxtYuNj9m1mhf26kv12AU3d3S5TFUwoeTzx")
	f.Add(append([]byte{kindForMe}, chunk([]byte("v=0\r\n"))...))
	f.Add(append(append([]byte{kindForward}, chunk([]byte(self))...), chunk([]byte("v=0\r\n"))...))
	f.Add([]byte{kindForward, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, target, offer, err := readSignalRequest(bufio.NewReader(bytes.NewReader(b)), self)
		if err != nil {
			return
		}
		if kind != kindForMe && kind != kindForward || target.Validate() != nil || len(offer) > webrtcpt.MaxSDP {
			t.Fatalf("accepted kind %d target %q offer of %d bytes from %x", kind, target, len(offer), b)
		}
		if kind == kindForMe && target != self {
			t.Fatalf("kindForMe for %s", target)
		}
	})
}
