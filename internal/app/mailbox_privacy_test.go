package app

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/messenger"
)

// lockedBuffer collects what concurrent writers (a logger, a trace) write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// TestMailboxHostSeesNoDevice is issue 14's first "done when": a mailbox
// host's complete view of alice writing to bob through it names neither
// device. Every node has its own loopback address: alice 127.0.0.2, bob
// 127.0.0.3, another relay 127.0.0.4 on which the host keeps a circuit
// slot (RelayOptions.Via), the host 127.0.0.5. Bob names his host by its
// circuit address; bob is offline, so alice's first message is deposited
// there, and bob fetches it when he is back. The host's view is then
// searched for both devices' peer ids (in full and as the 16-character
// prefix logs use), their addresses and their account ids:
//   - its trace (--trace-file: every byte its mailbox service exchanged,
//     and for each stream the peer id and address it came from),
//   - its logs at debug level (mailbox and p2p),
//   - its database, decrypted with its own key (as the operator can), both
//     while it holds the message and after bob took it,
//   - every address its libp2p node knows for each peer that opened a
//     mailbox stream (what identify told it, and the connection's remote
//     address).
func TestMailboxHostSeesNoDevice(t *testing.T) {
	ctx := context.Background()
	via := startAt(t, "via", "127.0.0.4", RelayOptions{})
	trace, logs := &lockedBuffer{}, &lockedBuffer{}
	hostDir := filepath.Join(t.TempDir(), "host")
	host := startAt(t, "host", "127.0.0.5", RelayOptions{
		Dir: hostDir, Via: via.Addrs(), Mailbox: MailboxOptions{Trace: trace},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	var circuit string
	eventually(t, 30*time.Second, "the host's slot on the other relay", func() bool {
		for _, a := range host.Addrs() {
			if strings.Contains(a, "/p2p/"+via.PeerID()+"/p2p-circuit/p2p/"+host.PeerID()) {
				circuit = a
				return true
			}
		}
		return false
	})
	hosts, err := ParseMailboxHosts([]string{circuit})
	if err != nil {
		t.Fatal(err)
	}

	bobOpts := userOptions(t, "bob", "127.0.0.3")
	bobOpts.Messenger.MailboxHosts = hosts
	bobOpts.Messenger.FetchInterval = 200 * time.Millisecond
	bob, err := Start(ctx, bobOpts)
	if err != nil {
		t.Fatal(err)
	}
	link, err := bob.Messenger.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bobPeer, bobAcct := bob.P2P.PeerID(), mustOwnAccount(t, bob)
	bob.Close()

	alice, err := Start(ctx, userOptions(t, "alice", "127.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	alicePeer, aliceAcct := alice.P2P.PeerID(), mustOwnAccount(t, alice)
	if _, err := alice.Messenger.AddContact(ctx, link, "bob"); err != nil {
		t.Fatal(err)
	}
	const text = "meet me where the river bends"
	m, err := alice.Messenger.Send(ctx, "bob", text)
	if err != nil {
		t.Fatal(err)
	}
	state := func(n *Node, contact, id string) string {
		_, ms, err := n.Messenger.Messages(ctx, contact, 0, 0)
		if err != nil {
			return ""
		}
		for _, x := range ms {
			if x.ID == id {
				return x.State
			}
		}
		return ""
	}
	eventually(t, 30*time.Second, "alice's message deposited", func() bool { return state(alice, "bob", m.ID) == messenger.StateSent })
	held, err := host.Mailbox.st.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := host.Mailbox.st.TotalUsage(ctx); err != nil || n != 1 {
		t.Fatalf("the host holds %d envelopes (%v), want alice's one", n, err)
	}

	bob, err = Start(ctx, bobOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	eventually(t, 30*time.Second, "bob has alice's message", func() bool {
		_, ms, err := bob.Messenger.Messages(ctx, aliceAcct, 0, 0)
		return err == nil && len(ms) == 1 && ms[0].Body == text
	})
	eventually(t, 30*time.Second, "delivered (bob's ack)", func() bool { return state(alice, "bob", m.ID) == messenger.StateDelivered })
	eventually(t, 30*time.Second, "the host's mailbox emptied", func() bool {
		_, n, err := host.Mailbox.st.TotalUsage(ctx)
		return err == nil && n == 0
	})

	// What the host's libp2p node knows of every peer that opened a
	// mailbox stream.
	streams := regexp.MustCompile(`#stream peer=(\S+) addr=(\S*)`).FindAllSubmatch(trace.Bytes(), -1)
	if len(streams) < 2 {
		t.Fatalf("the trace shows %d mailbox streams, want the deposit and the fetch at least", len(streams))
	}
	var known []byte
	for _, s := range streams {
		for _, a := range host.P2P.PeerAddrs(string(s[1])) {
			known = append(known, a...)
			known = append(known, '\n')
		}
	}
	after, err := host.Mailbox.st.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bob.Close()
	alice.Close()
	host.Close()
	files := map[string][]byte{}
	_ = filepath.WalkDir(hostDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil {
				files[p] = b
			}
		}
		return nil
	})
	views := map[string][]byte{
		"trace": trace.Bytes(), "logs": logs.Bytes(), "known addresses": known,
		"database while holding": held, "database after": after,
	}
	for p, b := range files {
		views["file "+filepath.Base(p)] = b
	}
	secrets := map[string]string{
		"alice's peer id": alicePeer, "bob's peer id": bobPeer,
		"alice's peer id prefix": alicePeer[:16], "bob's peer id prefix": bobPeer[:16],
		"alice's address": "127.0.0.2", "bob's address": "127.0.0.3",
		"alice's account": aliceAcct, "bob's account": bobAcct,
		"the plaintext": text,
	}
	for v, b := range views {
		for what, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("the host's %s contains %s", v, what)
			}
		}
	}
	// The streams came through the other relay, each from its own
	// identity.
	seen := map[string]bool{}
	for _, s := range streams {
		if !strings.Contains(string(s[2]), "/p2p-circuit") || !strings.Contains(string(s[2]), "127.0.0.4") {
			t.Errorf("a mailbox stream came from %s, not through the other relay", s[2])
		}
		if seen[string(s[1])] {
			t.Errorf("two mailbox streams from one peer id %s", s[1])
		}
		seen[string(s[1])] = true
	}
	t.Logf("checked %d mailbox streams; trace %d bytes, logs %d bytes, database %d+%d bytes",
		len(streams), len(trace.Bytes()), len(logs.Bytes()), len(held), len(after))
}

// startAt starts a loopback relay listening on ip.
func startAt(t *testing.T, name, ip string, o RelayOptions) *Relay {
	t.Helper()
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), name)
	}
	o.Listen, o.LoopbackOnly = []string{"/ip4/" + ip + "/tcp/0"}, true
	r, err := StartRelay(relayCtx(t), o)
	if err != nil {
		t.Fatalf("StartRelay %s: %v", name, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// userOptions makes a profile for name and returns options that run it on
// loopback address ip only.
func userOptions(t *testing.T, name, ip string) Options {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if _, err := Init(context.Background(), dir, name, KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	return Options{Dir: dir, Listen: []string{"/ip4/" + ip + "/tcp/0"}, LoopbackOnly: true, APIAddr: "-"}
}

// mustOwnAccount returns a node's account id.
func mustOwnAccount(t *testing.T, n *Node) string {
	t.Helper()
	return n.Messenger.AccountID()
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
