package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/samizdat-im/samizdat/internal/p2p/wss"
)

// recorder forwards TCP connections to target and keeps what the clients
// sent before the server's first answer: their first flight, as a censor
// on the path sees it.
type recorder struct {
	ln     net.Listener
	mu     sync.Mutex
	flight []byte
	wg     sync.WaitGroup
}

func newRecorder(t *testing.T, target string) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.wg.Add(2)
			go func() { // client → server, recording
				defer r.wg.Done()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						r.mu.Lock()
						r.flight = append(r.flight, buf[:n]...)
						r.mu.Unlock()
						_, _ = s.Write(buf[:n])
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
			go func() {
				defer r.wg.Done()
				_, _ = io.Copy(c, s)
				c.Close()
			}()
		}
	}()
	return r
}

func (r *recorder) seen() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.flight)
}

// A node with ECH advertises an ECH twin of its /tls/sni/NAME/ws address;
// a peer dialing it sends a ClientHello naming only the cover name, and
// the connection works. The plain address still serves dialers without
// ECH (old nodes).
func TestSecureWebSocketECH(t *testing.T) {
	key, err := NewECH("cover.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if name, err := ECHPublicName(key); err != nil || name != "cover.example.test" {
		t.Fatalf("ECHPublicName: %q %v", name, err)
	}
	b := newTestNode(t, Config{ListenAddrs: []string{wssAddr}, TLSName: "inner.example.test", ECH: key})
	var plain, twin string
	for _, a := range b.Addrs() {
		switch {
		case strings.Contains(a, "/tls/sni/inner.example.test/ws/certhash/"):
			twin = a
		case strings.Contains(a, "/tls/sni/inner.example.test/ws"):
			plain = a
		}
	}
	if plain == "" || twin == "" {
		t.Fatalf("want a plain and an ECH address, got %v", b.Addrs())
	}
	// Dial the twin through a recorder on the path.
	m := ma.StringCast(twin)
	port, _ := m.ValueForProtocol(ma.P_TCP)
	rec := newRecorder(t, "127.0.0.1:"+port)
	_, recPort, _ := net.SplitHostPort(rec.ln.Addr().String())
	viaRec := strings.Replace(twin, "/tcp/"+port+"/", "/tcp/"+recPort+"/", 1)
	a := newTestNode(t, Config{})
	if err := a.Connect(testCtx(t, 10*time.Second), b.PeerID(), []string{viaRec}); err != nil {
		t.Fatalf("connect over wss with ECH: %v", err)
	}
	echoed(t, a, b)
	flight := rec.seen()
	if !bytes.Contains(flight, []byte("cover.example.test")) || bytes.Contains(flight, []byte("inner.example.test")) {
		t.Fatalf("the first flight does not name the cover name only:\n%q", flight[:min(len(flight), 400)])
	}
	// An old node, which has no transport for the twin, dials the plain
	// address: b still accepts a ClientHello without ECH.
	c := newTestNode(t, Config{})
	if err := c.Connect(testCtx(t, 10*time.Second), b.PeerID(), []string{plain}); err != nil {
		t.Fatalf("connect over plain wss to an ECH node: %v", err)
	}
	echoed(t, c, b)
	// A stranger's ECH config (a stale card): the dial fails rather than
	// retrying with the inner name in the clear.
	other, _ := NewECH("cover.example.test")
	list := echConfigList(other)
	plainMA := ma.StringCast(strings.Split(plain, "/p2p/")[0])
	stale, err := wss.ECHAddr(plainMA, list)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestNode(t, Config{})
	if err := d.Connect(testCtx(t, 10*time.Second), b.PeerID(), []string{stale.String()}); err == nil {
		t.Fatal("connected with a stranger's ECH config")
	}
	// A node whose key changed (or that turned ECH off) still accepts
	// its earlier key, which contacts' copies of its card carry.
	next, _ := NewECH("cover.example.test")
	e := newTestNode(t, Config{ListenAddrs: []string{wssAddr}, TLSName: "inner.example.test", ECH: next, ECHAccept: [][]byte{key}})
	off := newTestNode(t, Config{ListenAddrs: []string{wssAddr}, TLSName: "inner.example.test", ECHAccept: [][]byte{key}})
	for _, n := range []*Node{e, off} {
		var plain string
		for _, a := range n.Addrs() {
			if strings.Contains(a, "/tls/sni/") && !strings.Contains(a, "/certhash/") {
				plain = a
			}
		}
		old, err := wss.ECHAddr(ma.StringCast(strings.Split(plain, "/p2p/")[0]), echConfigList(key))
		if err != nil {
			t.Fatal(err)
		}
		f := newTestNode(t, Config{})
		if err := f.Connect(testCtx(t, 10*time.Second), n.PeerID(), []string{old.String()}); err != nil {
			t.Fatalf("an earlier ECH key no longer accepted: %v", err)
		}
		echoed(t, f, n)
	}
	for _, a := range off.Addrs() {
		if strings.Contains(a, "/certhash/") {
			t.Fatalf("a node with ECH off advertises %s", a)
		}
	}
}

// The dial ranker leaves out a plain address that has an ECH twin, and
// only that one.
func TestRankPrefersECHTwin(t *testing.T) {
	key, _ := NewECH("cover.example.test")
	plain := ma.StringCast("/ip4/198.18.0.1/tcp/443/tls/sni/x.test/ws")
	twin, err := wss.ECHAddr(plain, echConfigList(key))
	if err != nil {
		t.Fatal(err)
	}
	list, back := wss.ECHConfigList(twin)
	if !bytes.Equal(list, echConfigList(key)) || !back.Equal(plain) {
		t.Fatalf("ECHConfigList(%s) = %x, %s", twin, list, back)
	}
	other := ma.StringCast("/ip4/198.18.0.2/tcp/443/tls/sni/x.test/ws")
	tcp := ma.StringCast("/ip4/198.18.0.1/tcp/4001")
	m := newTransportMemory(nil, nil)
	got := m.rank([]ma.Multiaddr{plain, twin, other, tcp})
	var dialled []string
	for _, ad := range got {
		dialled = append(dialled, ad.Addr.String())
	}
	if len(got) != 3 {
		t.Fatalf("rank: %v, want the twin, the other wss and tcp", dialled)
	}
	for _, s := range dialled {
		if s == plain.String() {
			t.Fatalf("plain twin dialled: %v", dialled)
		}
	}
	// A twin that fails (a stale or made-up config, a network that drops
	// ECH) lets the plain address back in; a race it lost does not count.
	dt := dialTracer{m.paths}
	dt.FailedDialing(twin, context.Canceled, nil)
	if m.paths.waiting(twin) {
		t.Fatal("a lost race counted as the twin's failure")
	}
	dt.FailedDialing(plain, errors.New("refused"), nil)
	if m.paths.waiting(twin) {
		t.Fatal("the plain address's failure made its twin back off")
	}
	m.paths.succeeded(plain)
	dt.FailedDialing(twin, errors.New("ech rejected"), nil)
	dialled = dialled[:0]
	for _, ad := range m.rank([]ma.Multiaddr{plain, twin, other, tcp}) {
		dialled = append(dialled, ad.Addr.String())
	}
	if !slices.Contains(dialled, plain.String()) || slices.Contains(dialled, twin.String()) {
		t.Fatalf("rank with the twin backing off: %v, want the plain address instead", dialled)
	}
	if TransportName(twin.String()) != "wss" {
		t.Fatalf("TransportName(%s) = %q", twin, TransportName(twin.String()))
	}
}
