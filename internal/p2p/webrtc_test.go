package p2p

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
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
