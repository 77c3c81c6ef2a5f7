package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
)

// TestMailboxHostsFromDHT: three relays announce their mailbox service in
// the DHT; a user who configured no mailbox host finds all three, lists
// them in its invite, and remembers them for the next start.
func TestMailboxHostsFromDHT(t *testing.T) {
	var relays []*Relay
	var boot []string
	for i := range 3 {
		r, err := StartRelay(relayCtx(t), RelayOptions{
			Dir: filepath.Join(t.TempDir(), "relay"), Listen: []string{"/ip4/127.0.0.1/tcp/0"},
			LoopbackOnly: true, EnableDHT: true, Bootstrap: boot,
		})
		if err != nil {
			t.Fatalf("StartRelay %d: %v", i, err)
		}
		t.Cleanup(func() { r.Close() })
		relays = append(relays, r)
		if i == 0 {
			boot = r.Addrs()
		}
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "alice")
	if _, err := Init(ctx, dir, "alice", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, EnableDHT: true, Bootstrap: boot, APIAddr: "-"}
	n, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, r := range relays {
		want[r.PeerID()] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(n.Messenger.Mailboxes()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("found %d mailbox hosts in the DHT, want 3", len(n.Messenger.Mailboxes()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, h := range n.Messenger.Mailboxes() {
		if !want[h.PeerID] {
			t.Errorf("unexpected host %s", h.PeerID)
		}
	}
	link, err := n.Messenger.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := identity.ParseInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Card.Mailboxes) != 3 {
		t.Fatalf("the invite lists %d mailbox hosts, want 3", len(inv.Card.Mailboxes))
	}
	n.Close()
	// Remembered: the next start has them at once, with no DHT at all.
	o.EnableDHT, o.Bootstrap = false, nil
	n2, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if got := len(n2.Messenger.Mailboxes()); got != 3 {
		t.Fatalf("after a restart: %d mailbox hosts, want 3", got)
	}
}
