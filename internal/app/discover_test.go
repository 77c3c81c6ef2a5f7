package app

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/messenger"
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

// TestBehindNATThroughRelay: alice listens nowhere (as if behind NAT); her
// node books a slot on a samizdat relay (--relay; no mailbox host, so no
// other path exists) and her invite carries the relayed address; bob, who
// has only that invite, writes to her and his message is delivered
// through the relay. A mailbox host that is a relay serves the same way
// (Node.staticRelays).
func TestBehindNATThroughRelay(t *testing.T) {
	r := startTestRelay(t, filepath.Join(t.TempDir(), "relay"), MailboxOptions{})
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "alice")
	if _, err := Init(ctx, dir, "alice", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: dir, Listen: []string{}, LoopbackOnly: true, BehindNAT: true, APIAddr: "-", Relays: r.Addrs()}
	alice, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	var link string
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The card is re-signed when the node's addresses change.
		if link, err = alice.Messenger.Invite(ctx); err != nil {
			t.Fatal(err)
		}
		inv, err := identity.ParseInvite(link)
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Card.Devices) == 1 && len(inv.Card.Devices[0].Addrs) > 0 {
			for _, a := range inv.Card.Devices[0].Addrs {
				if !strings.Contains(a, "/p2p/"+r.PeerID()+"/p2p-circuit") {
					t.Fatalf("alice listens nowhere, yet her card has %q", a)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's card never got a relayed address")
		}
		time.Sleep(100 * time.Millisecond)
	}
	bob := startNode(t, "bob")
	if _, err := bob.Messenger.AddContact(ctx, link, ""); err != nil {
		t.Fatal(err)
	}
	m, err := bob.Messenger.Send(ctx, "alice", "through the relay")
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, msgs, err := bob.Messenger.Messages(ctx, "alice", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 1 && msgs[0].ID == m.ID && msgs[0].State == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered through the relay: %+v", msgs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStaticRelaysFromHosts: the configured relays, or with none the
// mailbox hosts (a slot shows the host the device: issue 14), never a
// host's circuit address.
func TestStaticRelaysFromHosts(t *testing.T) {
	hosts := []messenger.MailboxHost{
		{PeerID: "H1", Addrs: []string{"/ip4/127.0.0.1/tcp/7"}},
		{PeerID: "R1", Addrs: []string{"/ip4/127.0.0.1/tcp/9/p2p/R1"}},
		{PeerID: "H2", Addrs: []string{"/ip4/127.0.0.4/tcp/8/p2p/V/p2p-circuit"}},
	}
	n := &Node{relays: []string{"/ip4/127.0.0.1/tcp/9/p2p/R1"}}
	if got, want := n.staticRelays(hosts), []string{"/ip4/127.0.0.1/tcp/9/p2p/R1"}; !slices.Equal(got, want) {
		t.Fatalf("with --relay: staticRelays = %v, want %v", got, want)
	}
	n = &Node{}
	if got, want := n.staticRelays(hosts), []string{"/ip4/127.0.0.1/tcp/7/p2p/H1", "/ip4/127.0.0.1/tcp/9/p2p/R1"}; !slices.Equal(got, want) {
		t.Fatalf("without: staticRelays = %v, want %v", got, want)
	}
}
