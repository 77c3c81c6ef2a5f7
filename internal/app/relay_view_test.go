package app

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/messenger"
)

// wiretap is a TCP forwarder in front of a relay: every byte of every
// connection to it, both ways, is recorded — the relay's complete view of
// the traffic it carries.
type wiretap struct {
	ln    net.Listener
	bytes lockedBuffer
	mu    sync.Mutex
	conns int
	wg    sync.WaitGroup
}

func startWiretap(t *testing.T, listen, target string) *wiretap {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	w := &wiretap{ln: ln}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			w.mu.Lock()
			w.conns++
			w.mu.Unlock()
			w.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer w.wg.Done()
				_, _ = io.Copy(io.MultiWriter(dst, &w.bytes), src)
				dst.Close()
				src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	t.Cleanup(func() { ln.Close(); w.wg.Wait() })
	return w
}

func (w *wiretap) count() int { w.mu.Lock(); defer w.mu.Unlock(); return w.conns }

// TestCircuitRelaySeesNoMailboxID: the relay through which alice deposits
// and bob fetches (the host keeps its slot there, `relay --via`) carries
// their mailbox streams without learning the mailbox id. Every byte the
// relay exchanged with anyone (a forwarder in front of it records each
// connection, both ways), its logs and its files hold neither bob's
// mailbox id (raw or hex), nor either account id, nor the plaintext;
// the host's own trace holds the raw id, so the search would find it.
func TestCircuitRelaySeesNoMailboxID(t *testing.T) {
	ctx := context.Background()
	viaLogs := &lockedBuffer{}
	viaDir := filepath.Join(t.TempDir(), "via")
	via := startAt(t, "via", "127.0.0.4", RelayOptions{Dir: viaDir,
		Logger: slog.New(slog.NewTextHandler(viaLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	var viaTCP string // 127.0.0.4:PORT
	for _, a := range via.Addrs() {
		if p := strings.Split(a, "/"); len(p) > 4 && p[1] == "ip4" && p[3] == "tcp" {
			viaTCP = p[2] + ":" + p[4]
			break
		}
	}
	if viaTCP == "" {
		t.Fatalf("no TCP address of the relay in %v", via.Addrs())
	}
	tap := startWiretap(t, "127.0.0.6:0", viaTCP)
	_, port, _ := net.SplitHostPort(tap.ln.Addr().String())
	tapped := "/ip4/127.0.0.6/tcp/" + port + "/p2p/" + via.PeerID()

	trace := &lockedBuffer{}
	host := startAt(t, "host", "127.0.0.5", RelayOptions{Via: []string{tapped}, Mailbox: MailboxOptions{Trace: trace}})
	var circuit string
	eventually(t, 30*time.Second, "the host's slot on the relay, through the tap", func() bool {
		for _, a := range host.Addrs() {
			if strings.HasPrefix(a, tapped+"/p2p-circuit/p2p/"+host.PeerID()) {
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
	mbs := bob.Messenger.Mailboxes()
	if len(mbs) == 0 || mbs[0].MailboxID == "" {
		t.Fatalf("bob's mailboxes: %+v", mbs)
	}
	mailboxID := mbs[0].MailboxID
	rawID, err := hex.DecodeString(mailboxID)
	if err != nil {
		t.Fatal(err)
	}
	bobAcct := bob.Messenger.AccountID()
	bob.Close()

	alice, err := Start(ctx, userOptions(t, "alice", "127.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	aliceAcct := alice.Messenger.AccountID()
	if _, err := alice.Messenger.AddContact(ctx, link, "bob"); err != nil {
		t.Fatal(err)
	}
	const text = "the relay must not know whose mail this is"
	m, err := alice.Messenger.Send(ctx, "bob", text)
	if err != nil {
		t.Fatal(err)
	}
	state := func(n *Node, contact, id string) string {
		_, ms, _ := n.Messenger.Messages(ctx, contact, 0, 0)
		for _, x := range ms {
			if x.ID == id {
				return x.State
			}
		}
		return ""
	}
	eventually(t, 30*time.Second, "alice's message deposited", func() bool { return state(alice, "bob", m.ID) == messenger.StateSent })
	bob, err = Start(ctx, bobOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	eventually(t, 30*time.Second, "delivered (bob fetched and acked)", func() bool { return state(alice, "bob", m.ID) == messenger.StateDelivered })
	bob.Close()
	alice.Close()
	host.Close()

	if !bytes.Contains(trace.Bytes(), rawID) {
		t.Fatal("the host's trace does not hold the raw mailbox id: the search below would prove nothing")
	}
	if n := tap.count(); n < 3 {
		t.Fatalf("%d connections went through the tap, want the host's slot, alice's deposit and bob's fetch at least", n)
	}
	via.Close()
	views := map[string][]byte{"wire bytes": tap.bytes.Bytes(), "logs": viaLogs.Bytes()}
	_ = filepath.WalkDir(viaDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil {
				views["file "+filepath.Base(p)] = b
			}
		}
		return nil
	})
	secrets := map[string][]byte{
		"the raw mailbox id": rawID, "the mailbox id (hex)": []byte(mailboxID),
		"alice's account": []byte(aliceAcct), "bob's account": []byte(bobAcct), "the plaintext": []byte(text),
	}
	for v, b := range views {
		for what, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("the relay's %s contain %s", v, what)
			}
		}
	}
	t.Logf("the relay carried %d connections, %d bytes; logs %d bytes", tap.count(), len(tap.bytes.Bytes()), len(viaLogs.Bytes()))
}
