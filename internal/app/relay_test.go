package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

func relayCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startTestRelay starts a loopback-only relay on dir, closed at the end of
// the test.
func startTestRelay(t *testing.T, dir string, mo MailboxOptions) *Relay {
	t.Helper()
	r, err := StartRelay(relayCtx(t), RelayOptions{Dir: dir, Mailbox: mo, LoopbackOnly: true})
	if err != nil {
		t.Fatalf("StartRelay: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// loopbackPeer is a p2p node that listens nowhere and knows the relay.
func loopbackPeer(t *testing.T, r *Relay) *p2p.Node {
	t.Helper()
	n, err := p2p.New(relayCtx(t), p2p.Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if r != nil {
		n.AddAddrs(r.PeerID(), r.Addrs())
	}
	return n
}

func mailboxKey(t *testing.T) ed25519.PrivateKey {
	k, err := mailbox.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func env(i, size int) []byte {
	b := bytes.Repeat([]byte{0x5A}, size)
	copy(b, fmt.Sprintf("envelope %d", i))
	return b
}

func TestRelayMailboxSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	r := startTestRelay(t, dir, MailboxOptions{})
	peerID, addrs := r.PeerID(), r.Addrs()
	if len(addrs) == 0 {
		t.Fatal("relay has no addresses")
	}
	sender, owner := loopbackPeer(t, r), loopbackPeer(t, r)
	key := mailboxKey(t)
	var sent [][]byte
	for i := range 3 {
		sent = append(sent, env(i, 500+i))
		if err := mailbox.Deposit(relayCtx(t), sender, peerID, mailbox.KeyID(key), sent[i]); err != nil {
			t.Fatalf("Deposit %d: %v", i, err)
		}
	}
	items, err := mailbox.Fetch(relayCtx(t), owner, peerID, key, 0)
	if err != nil || len(items) != 3 {
		t.Fatalf("Fetch = %d items, %v", len(items), err)
	}
	if n, err := mailbox.Delete(relayCtx(t), owner, peerID, key, []mailbox.Hash{items[0].Hash}); err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v", n, err)
	}

	for name, want := range map[string]os.FileMode{RelayKeyFile: 0o600, MailboxKeyFile: 0o600, "": 0o700} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%q has mode %v, want %v", name, got, want)
		}
	}

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r2 := startTestRelay(t, dir, MailboxOptions{})
	if r2.PeerID() != peerID {
		t.Fatalf("peer id changed across restart: %s → %s", peerID, r2.PeerID())
	}
	if a, b := slices.Sorted(slices.Values(r2.Addrs())), slices.Sorted(slices.Values(addrs)); !slices.Equal(a, b) {
		t.Errorf("addresses changed across restart (ports not reused): %v → %v", addrs, r2.Addrs())
	}
	items, err = mailbox.Fetch(relayCtx(t), loopbackPeer(t, r2), peerID, key, 0)
	if err != nil {
		t.Fatalf("Fetch after restart: %v", err)
	}
	if len(items) != 2 || !bytes.Equal(items[0].Envelope, sent[1]) || !bytes.Equal(items[1].Envelope, sent[2]) {
		t.Fatalf("after restart: %d items, want the 2 not deleted", len(items))
	}
}

func TestRelayProfileLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	startTestRelay(t, dir, MailboxOptions{})
	_, err := StartRelay(relayCtx(t), RelayOptions{Dir: dir, LoopbackOnly: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second relay on one profile: %v, want ErrLocked", err)
	}

	user := filepath.Join(t.TempDir(), "user")
	if _, err := Init(context.Background(), user, "u", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := StartRelay(relayCtx(t), RelayOptions{Dir: user, LoopbackOnly: true}); !errors.Is(err, ErrUserProfile) {
		t.Fatalf("relay on a user profile: %v, want ErrUserProfile", err)
	}
}

func TestRelayDamagedFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	r := startTestRelay(t, dir, MailboxOptions{})
	r.Close()
	os.WriteFile(filepath.Join(dir, RelayKeyFile), []byte("not hex\n"), 0o600)
	if _, err := StartRelay(relayCtx(t), RelayOptions{Dir: dir, LoopbackOnly: true}); err == nil {
		t.Fatal("started with a damaged relay key")
	}
	os.Remove(filepath.Join(dir, RelayKeyFile))
	os.Remove(filepath.Join(dir, MailboxKeyFile))
	if _, err := StartRelay(relayCtx(t), RelayOptions{Dir: dir, LoopbackOnly: true}); err == nil {
		t.Fatal("started with mailbox.db but no mailbox.key")
	}
}

func TestRelayQuotas(t *testing.T) {
	r := startTestRelay(t, filepath.Join(t.TempDir(), "relay"), MailboxOptions{
		Quotas: mailbox.Quotas{PerMailbox: 3000, Total: 5000},
	})
	c := loopbackPeer(t, r)
	k1, k2 := mailbox.KeyID(mailboxKey(t)), mailbox.KeyID(mailboxKey(t))
	deposit := func(id mailbox.ID, i int) error {
		return mailbox.Deposit(relayCtx(t), c, r.PeerID(), id, env(i, 2000))
	}
	if err := deposit(k1, 1); err != nil {
		t.Fatal(err)
	}
	if err := deposit(k1, 2); !errors.Is(err, mailbox.ErrQuotaFull) {
		t.Fatalf("over the per-mailbox quota: %v, want ErrQuotaFull", err)
	}
	if err := deposit(k2, 3); err != nil {
		t.Fatal(err)
	}
	if err := deposit(k2, 4); !errors.Is(err, mailbox.ErrQuotaFull) {
		t.Fatalf("over the total quota: %v, want ErrQuotaFull", err)
	}
}

// A node that listens nowhere is reached through the relay's circuit relay
// v2 service.
func TestRelayCircuit(t *testing.T) {
	r := startTestRelay(t, filepath.Join(t.TempDir(), "relay"), MailboxOptions{})
	a, b := loopbackPeer(t, nil), loopbackPeer(t, nil)
	a.Handle(p2p.EchoProtocol, p2p.EchoHandler)
	rsvp, err := a.ReserveRelay(relayCtx(t), r.Addrs()[0])
	if err != nil {
		t.Fatalf("ReserveRelay: %v", err)
	}
	want := "/p2p/" + r.PeerID() + "/p2p-circuit/p2p/" + a.PeerID()
	if len(rsvp.Addrs) == 0 || !bytes.HasSuffix([]byte(rsvp.Addrs[0]), []byte(want)) {
		t.Fatalf("circuit addrs %v, want …%s", rsvp.Addrs, want)
	}
	b.AddAddrs(a.PeerID(), rsvp.Addrs)
	s, err := b.OpenStream(relayCtx(t), a.PeerID(), p2p.EchoProtocol)
	if err != nil {
		t.Fatalf("OpenStream via the relay: %v", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write([]byte("via relay")); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "via relay" {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

// up --serve-mailbox: a user's node hosts mailboxes too.
func TestNodeServeMailbox(t *testing.T) {
	n := startNode(t, "host")
	svc, err := n.ServeMailbox(MailboxOptions{})
	if err != nil {
		t.Fatalf("ServeMailbox: %v", err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("mailbox Close: %v", err)
		}
	})
	c, err := p2p.New(relayCtx(t), p2p.Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.AddAddrs(n.P2P.PeerID(), n.P2P.Addrs())
	key := mailboxKey(t)
	if err := mailbox.Deposit(relayCtx(t), c, n.P2P.PeerID(), mailbox.KeyID(key), env(7, 300)); err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	items, err := mailbox.Fetch(relayCtx(t), c, n.P2P.PeerID(), key, 0)
	if err != nil || len(items) != 1 || !bytes.Equal(items[0].Envelope, env(7, 300)) {
		t.Fatalf("Fetch = %d items, %v", len(items), err)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, MailboxDBFile)); err != nil {
		t.Fatalf("no %s in the profile: %v", MailboxDBFile, err)
	}
}
