package messenger

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tnode is one real node for tests: an encrypted store file, a libp2p
// host on loopback and a messenger.
type tnode struct {
	t    testing.TB
	name string
	dir  string
	key  []byte
	priv []byte
	st   *store.Store
	n    *p2p.Node
	m    *Messenger
	addr string // fixed listen address, kept across restarts
	tune func(*Config)
	net  func(*p2p.Config) // tunes the transport (e.g. DHT on)
}

func newNode(t testing.TB, name string) *tnode {
	t.Helper()
	return newNodeTuned(t, name, nil)
}

// newNodeTuned is newNode with its config changed by tune.
func newNodeTuned(t testing.TB, name string, tune func(*Config)) *tnode {
	t.Helper()
	tn := &tnode{t: t, name: name, dir: t.TempDir(), key: make([]byte, store.KeySize), tune: tune}
	rand.Read(tn.key)
	var err error
	if tn.priv, _, err = p2p.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(tn.dir, "db"), tn.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := InitProfile(context.Background(), st, name, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	tn.start()
	t.Cleanup(tn.stop)
	return tn
}

func (tn *tnode) start() {
	tn.t.Helper()
	ctx := context.Background()
	st, err := store.Open(filepath.Join(tn.dir, "db"), tn.key)
	if err != nil {
		tn.t.Fatal(err)
	}
	listen := "/ip4/127.0.0.1/tcp/0"
	if tn.addr != "" {
		listen = tn.addr
	}
	pc := p2p.Config{PrivateKey: tn.priv, ListenAddrs: []string{listen}, LoopbackOnly: true}
	if tn.net != nil {
		tn.net(&pc)
	}
	n, err := p2p.New(ctx, pc)
	if err != nil {
		tn.t.Fatal(err)
	}
	cfg := Config{Store: st, Transport: n, RetryMin: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond}
	if tn.tune != nil {
		tn.tune(&cfg)
	}
	m, err := New(ctx, cfg)
	if err != nil {
		tn.t.Fatal(err)
	}
	m.Start(ctx)
	tn.st, tn.n, tn.m = st, n, m
}

// start2 restarts a node whose messenger alone was closed (heldEnvelope).
func (tn *tnode) start2() {
	tn.stop()
	tn.start()
}

// restartWith restarts the node with its config changed by tune.
func (tn *tnode) restartWith(tune func(*Config)) {
	tn.stop()
	tn.tune = tune
	tn.start()
}

// pinAddr makes later restarts listen on the port the node has now, as a
// daemon with a configured port does.
func (tn *tnode) pinAddr() {
	a := tn.n.Addrs()[0]
	tn.addr = a[:strings.Index(a, "/p2p/")]
}

func (tn *tnode) stop() {
	if tn.m == nil {
		return
	}
	tn.m.Close()
	tn.n.Close()
	tn.st.Close()
	tn.m, tn.n, tn.st = nil, nil, nil
}

// addContact makes b a contact of a, by b's invite.
func addContact(t testing.TB, a, b *tnode) ContactInfo {
	t.Helper()
	link, err := b.m.Invite(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.m.AddContact(context.Background(), link, b.name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func send(t testing.TB, from *tnode, to, text string) store.Message {
	t.Helper()
	m, err := from.m.Send(context.Background(), to, text)
	if err != nil {
		t.Fatalf("%s sends to %s: %v", from.name, to, err)
	}
	return m
}

func messages(t testing.TB, n *tnode, contact string) []store.Message {
	t.Helper()
	_, ms, err := n.m.Messages(context.Background(), contact, 0, 0)
	if err != nil {
		t.Fatalf("messages of %s with %s: %v", n.name, contact, err)
	}
	return ms
}

func stateOf(t testing.TB, n *tnode, contact, id string) string {
	for _, m := range messages(t, n, contact) {
		if m.ID == id && m.Outgoing {
			return m.State
		}
	}
	return ""
}

func waitState(t testing.TB, n *tnode, contact, id, state string) {
	t.Helper()
	eventually(t, 20*time.Second, n.name+"'s message to "+contact+" "+state, func() bool { return stateOf(t, n, contact, id) == state })
}

func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
