package mesh

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// memNet is an in-memory link layer for mesh tests: nodes come into and go
// out of range with link and unlink, like a phone walking between LANs.
type memNet struct {
	mu    sync.Mutex
	nodes map[string]*memNode
	links map[[2]string]bool
	wg    sync.WaitGroup
}

// newMemNet makes a net whose callbacks and handlers are waited for when
// the test ends (after every mesh on it is closed: cleanups run last in,
// first out).
func newMemNet(t *testing.T) *memNet {
	n := &memNet{nodes: map[string]*memNode{}, links: map[[2]string]bool{}}
	t.Cleanup(n.wg.Wait)
	return n
}

func linkKey(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (n *memNet) node(id string) *memNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd := &memNode{net: n, id: id, handlers: map[string]func(p2p.Stream){}}
	n.nodes[id] = nd
	return nd
}

// link brings a and b into range of each other.
func (n *memNet) link(a, b string) {
	n.mu.Lock()
	k := linkKey(a, b)
	if n.links[k] {
		n.mu.Unlock()
		return
	}
	n.links[k] = true
	na, nb := n.nodes[a], n.nodes[b]
	n.mu.Unlock()
	na.connected(b)
	nb.connected(a)
}

func (n *memNet) unlink(a, b string) {
	n.mu.Lock()
	delete(n.links, linkKey(a, b))
	n.mu.Unlock()
}

func (n *memNet) linked(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[linkKey(a, b)]
}

type memNode struct {
	net      *memNet
	id       string
	mu       sync.Mutex
	handlers map[string]func(p2p.Stream)
	onConn   []func(string)
}

var _ Transport = (*memNode)(nil)

func (m *memNode) PeerID() string { return m.id }

func (m *memNode) Handle(proto string, h func(p2p.Stream)) {
	m.mu.Lock()
	m.handlers[proto] = h
	m.mu.Unlock()
}

func (m *memNode) Unhandle(proto string) {
	m.mu.Lock()
	delete(m.handlers, proto)
	m.mu.Unlock()
}

func (m *memNode) OnConnected(f func(string)) {
	m.mu.Lock()
	m.onConn = append(m.onConn, f)
	m.mu.Unlock()
}

func (m *memNode) connected(peer string) {
	m.mu.Lock()
	fs := append([]func(string){}, m.onConn...)
	m.mu.Unlock()
	for _, f := range fs {
		m.net.wg.Add(1)
		go func() {
			defer m.net.wg.Done()
			f(peer)
		}()
	}
}

func (m *memNode) ConnectedPeers() []string {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	var out []string
	for k := range m.net.links {
		switch m.id {
		case k[0]:
			out = append(out, k[1])
		case k[1]:
			out = append(out, k[0])
		}
	}
	return out
}

func (m *memNode) OpenStream(ctx context.Context, peer, proto string) (p2p.Stream, error) {
	if !m.net.linked(m.id, peer) {
		return nil, p2p.ErrUnreachable
	}
	m.net.mu.Lock()
	other := m.net.nodes[peer]
	m.net.mu.Unlock()
	other.mu.Lock()
	h := other.handlers[proto]
	other.mu.Unlock()
	if h == nil {
		return nil, p2p.ErrProtocolNotSupported
	}
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	a := &memStream{r: ar, w: aw, peer: peer}
	b := &memStream{r: br, w: bw, peer: m.id}
	m.net.wg.Add(1)
	go func() {
		defer m.net.wg.Done()
		h(b)
	}()
	return a, nil
}

// memStream is one end of an in-memory stream with half-close.
type memStream struct {
	r    *io.PipeReader
	w    *io.PipeWriter
	peer string
}

var errReset = errors.New("stream reset")

func (s *memStream) Read(b []byte) (int, error)  { return s.r.Read(b) }
func (s *memStream) Write(b []byte) (int, error) { return s.w.Write(b) }
func (s *memStream) CloseWrite() error           { return s.w.Close() }
func (s *memStream) Close() error {
	_ = s.w.Close()
	return s.r.Close()
}
func (s *memStream) Reset() error {
	_ = s.w.CloseWithError(errReset)
	return s.r.CloseWithError(errReset)
}
func (s *memStream) SetDeadline(time.Time) error { return nil }
func (s *memStream) RemotePeer() string          { return s.peer }
