package mailbox

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

var _ Host = (*p2p.Node)(nil)
var _ Opener = (*p2p.Node)(nil)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newNode starts a loopback-only node closed at the end of the test.
func newNode(tb testing.TB) *p2p.Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := p2p.New(ctx, p2p.Config{LoopbackOnly: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		tb.Fatalf("p2p.New: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("node Close: %v", err)
		}
	})
	return n
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// relay is a mailbox host under test.
type relay struct {
	node   *p2p.Node
	srv    *Server
	st     *store.MailboxStore
	path   string
	closed bool
}

func (r *relay) close(tb testing.TB) {
	tb.Helper()
	if r.closed {
		return
	}
	r.closed = true
	if err := r.srv.Close(); err != nil {
		tb.Errorf("server Close: %v", err)
	}
	if err := r.st.Close(); err != nil {
		tb.Errorf("store Close: %v", err)
	}
}

var testDBKey = bytes.Repeat([]byte{0x42}, store.KeySize)

// startRelay serves a mailbox store at path (a new one in a temp dir if
// empty) on node (a new one if nil).
func startRelay(tb testing.TB, node *p2p.Node, path string, cfg ServerConfig) *relay {
	tb.Helper()
	if node == nil {
		node = newNode(tb)
	}
	if path == "" {
		path = filepath.Join(tb.TempDir(), "mailbox.db")
	}
	st, err := store.OpenMailboxStore(path, testDBKey)
	if err != nil {
		tb.Fatalf("OpenMailboxStore: %v", err)
	}
	cfg.Store = st
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = -1
	}
	r := &relay{node: node, srv: NewServer(cfg), st: st, path: path}
	r.srv.Register(node)
	tb.Cleanup(func() { r.close(tb) })
	return r
}

// client returns a node that knows r's addresses.
func (r *relay) client(tb testing.TB) *p2p.Node {
	tb.Helper()
	c := newNode(tb)
	c.AddAddrs(r.node.PeerID(), r.node.Addrs())
	return c
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func mustKey(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	k, err := NewKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func envelope(marker string, n int) []byte {
	b := bytes.Repeat([]byte{0xA5}, n)
	copy(b, marker)
	return b
}
