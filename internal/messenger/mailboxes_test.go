package messenger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// startMailboxHost runs a mailbox host (as `samizdat relay` does) on
// loopback and returns how to reach it.
func startMailboxHost(t testing.TB) (MailboxHost, *store.MailboxStore, string) {
	t.Helper()
	return startTracedHost(t, nil)
}

// startTracedHost is startMailboxHost with every byte the host's mailbox
// service exchanges written to trace (nil: none).
func startTracedHost(t testing.TB, trace io.Writer) (MailboxHost, *store.MailboxStore, string) {
	t.Helper()
	key := make([]byte, store.KeySize)
	rand.Read(key)
	dir := t.TempDir()
	ms, err := store.OpenMailboxStore(filepath.Join(dir, "mailbox.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := p2p.New(context.Background(), p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := mailbox.NewServer(mailbox.ServerConfig{Store: ms, SweepInterval: -1, Trace: trace})
	srv.Register(n)
	t.Cleanup(func() {
		srv.Close()
		n.Close()
		ms.Close()
	})
	return MailboxHost{PeerID: n.PeerID(), Addrs: transportAddrs(n.Addrs())}, ms, dir
}

// dirContains reports whether any file in dir contains s.
func dirContains(t testing.TB, dir, s string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

func withMailbox(h MailboxHost) func(*Config) {
	return func(c *Config) {
		c.MailboxHosts = []MailboxHost{h}
		c.FetchInterval = 200 * time.Millisecond
	}
}

// TestOfflineDeliveryThroughMailbox: bob is offline; alice's message goes
// to bob's mailbox host; alice goes offline too; bob comes online, fetches
// it, and his ack reaches alice when she is back: delivered, exactly once.
func TestOfflineDeliveryThroughMailbox(t *testing.T) {
	host, ms, hostDir := startMailboxHost(t)
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	bob.pinAddr()
	bob.restartWith(withMailbox(host)) // bob's card now names his mailbox
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	alice.pinAddr()
	bob.stop()

	const text = "left at the mailbox while you were away"
	m := send(t, alice, "bob", text)
	eventually(t, 20*time.Second, "the message deposited (sent)", func() bool { return stateOf(t, alice, "bob", m.ID) == StateSent })
	// The host holds only ciphertext: no plaintext in its database file.
	ctx := context.Background()
	if _, n, err := ms.TotalUsage(ctx); err != nil || n == 0 {
		t.Fatalf("mailbox host holds %d envelopes (%v)", n, err)
	}
	alice.stop() // the sender goes offline too

	bob.start() // fetches from the mailbox
	eventually(t, 20*time.Second, "bob has the message", func() bool {
		got := messages(t, bob, "alice")
		return len(got) == 1 && got[0].Body == text
	})
	eventually(t, 20*time.Second, "the mailbox emptied", func() bool {
		_, n, err := ms.TotalUsage(ctx)
		return err == nil && n == 0
	})
	alice.start() // bob's queued ack reaches her
	waitState(t, alice, "bob", m.ID, StateDelivered)
	if got := messages(t, bob, "alice"); len(got) != 1 {
		t.Fatalf("bob has %d messages, want exactly 1", len(got))
	}
	// And a reply works directly again.
	r := send(t, bob, "alice", "got it")
	waitState(t, bob, "alice", r.ID, StateDelivered)
	// Bob's outbox is empty: the ack item went out and left.
	bob.st.View(ctx, func(tx *store.Tx) error {
		items, err := tx.Outbox(1)
		if err != nil || len(items) != 0 {
			t.Errorf("bob's outbox still holds %d items (%v)", len(items), err)
		}
		return nil
	})
	// The host never held anything readable.
	if dirContains(t, hostDir, text) || dirContains(t, hostDir, "alice") {
		t.Error("plaintext found at the mailbox host")
	}
}

// TestFirstContactThroughMailbox: the very first message (with the PQXDH
// initiation and alice's card) arrives through the mailbox; bob learns
// alice from it and his ack goes back when she is reachable.
func TestFirstContactThroughMailbox(t *testing.T) {
	host, ms, _ := startMailboxHost(t)
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	bob.pinAddr()
	bob.restartWith(withMailbox(host))
	addContact(t, alice, bob) // bob does not know alice
	mbID := mailbox.KeyID(bob.m.mbKey)
	pa, pb, acct := alice.m.Identity(), bob.m.Identity(), alice.m.acct
	bob.stop()
	m := send(t, alice, "bob", "hello from a stranger with your invite")
	eventually(t, 20*time.Second, "deposited", func() bool { return stateOf(t, alice, "bob", m.ID) == StateSent })
	// Sealed sender: what the host keeps is a sealed box; the initiation
	// inside (alice's identity keys, bob's prekey ids) is not visible.
	page, _, err := ms.List(context.Background(), mbID[:], store.MailboxQuery{Limit: 10, Now: time.Now()})
	if err != nil || len(page) != 1 {
		t.Fatalf("host holds %d envelopes (%v)", len(page), err)
	}
	for _, secret := range [][]byte{pa.SigningKey(), pa.Marshal()[32:64], pb.SigningKey(), []byte(acct)} {
		if bytes.Contains(page[0].Envelope, secret) {
			t.Fatal("an identity key is visible in the deposited envelope")
		}
	}
	if _, err := wire.ParseEnvelope(page[0].Envelope); err == nil {
		t.Fatal("the host holds a bare envelope, not a sealed box")
	}
	bob.start()
	waitState(t, alice, "bob", m.ID, StateDelivered)
	got := messages(t, bob, "alice")
	if len(got) != 1 || got[0].Body != "hello from a stranger with your invite" {
		t.Fatalf("bob has %+v", got)
	}
}

// TestMailboxRotation: bob's mailbox id changes with his card; alice
// learns the new card from bob's next message and deposits under the new
// id; mail left under an older id is still fetched.
func TestMailboxRotation(t *testing.T) {
	host, ms, _ := startMailboxHost(t)
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	bob.pinAddr()
	rotating := func(c *Config) {
		withMailbox(host)(c)
		c.MailboxRotateAfter = time.Nanosecond // every new card gets a new id
	}
	bob.restartWith(rotating)
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	alice.pinAddr()
	old := mailbox.KeyID(bob.m.mailboxKeys()[0]) // the id alice has
	first := send(t, alice, "bob", "before the rotation")
	waitState(t, alice, "bob", first.ID, StateDelivered)

	bob.restartWith(rotating) // a new card on start: a new mailbox id
	r := send(t, bob, "alice", "my card changed")
	waitState(t, bob, "alice", r.ID, StateDelivered)
	keys := bob.m.mailboxKeys()
	cur := mailbox.KeyID(keys[0])
	if cur == old || len(keys) < 2 {
		t.Fatalf("no rotation: %d keys", len(keys))
	}
	// Mail still under the old id: a stranger's junk, and it must go.
	junk := bytes.Repeat([]byte{0xEE}, 300)
	c := startClient(t)
	c.AddAddrs(host.PeerID, host.Addrs)
	if err := mailbox.Deposit(context.Background(), c, host.PeerID, old, junk); err != nil {
		t.Fatal(err)
	}
	bob.stop()
	m := send(t, alice, "bob", "after the rotation")
	eventually(t, 20*time.Second, "deposited", func() bool { return stateOf(t, alice, "bob", m.ID) == StateSent })
	ctx := context.Background()
	if _, n, _ := ms.Usage(ctx, cur[:]); n != 1 {
		t.Fatalf("the new mailbox holds %d envelopes, want 1 (alice did not learn the new card)", n)
	}
	bob.start()
	waitState(t, alice, "bob", m.ID, StateDelivered)
	eventually(t, 20*time.Second, "both mailboxes emptied", func() bool {
		_, n1, _ := ms.Usage(ctx, old[:])
		_, n2, _ := ms.Usage(ctx, cur[:])
		return n1 == 0 && n2 == 0
	})
	got := messages(t, bob, "alice")
	if len(got) != 3 || got[2].Body != "after the rotation" {
		t.Fatalf("bob has %d messages", len(got))
	}
}

// startClient is a bare loopback node for talking to a host directly.
func startClient(t testing.TB) *p2p.Node {
	n, err := p2p.New(context.Background(), p2p.Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestMailboxKeysRecord(t *testing.T) {
	k1, _ := mailbox.NewKey()
	k2, _ := mailbox.NewKey()
	now := time.Unix(1_800_000_000, 5)
	ks := []mailboxKey{{key: k1, since: now.Add(-time.Hour), until: now}, {key: k2, since: now}}
	got, err := parseMailboxKeys(marshalMailboxKeys(ks))
	if err != nil || len(got) != 2 || !got[0].until.Equal(now) || !got[1].until.IsZero() || !bytes.Equal(got[1].key, k2) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := parseMailboxKeys(make([]byte, mailboxKeyRecord+1)); !errors.Is(err, errCorruptKeys) {
		t.Fatalf("damaged record: %v", err)
	}
}

// TestMailboxHostFaults: of bob's three hosts one is down, one drops what
// it accepted and serves garbage instead, and one is honest; later hosts
// replay envelopes bob already took. Every message arrives exactly once.
func TestMailboxHostFaults(t *testing.T) {
	honest, honestStore, _ := startMailboxHost(t)
	dropper, dropStore, _ := startMailboxHost(t)
	downNode := startClient(t)
	down := MailboxHost{PeerID: downNode.PeerID(), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}
	hosts := []MailboxHost{down, dropper, honest}
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	bob.pinAddr()
	bob.restartWith(func(c *Config) { c.MailboxHosts = hosts; c.FetchInterval = 200 * time.Millisecond })
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	alice.pinAddr()
	id := mailbox.KeyID(bob.m.mailboxKeys()[0])
	bob.stop()

	const n = 5
	var sent []string
	for i := range n {
		sent = append(sent, send(t, alice, "bob", "through a hostile world "+string(rune('a'+i))).ID)
	}
	ctx := context.Background()
	list := func(ms *store.MailboxStore) []store.MailboxEnvelope {
		page, _, err := ms.List(ctx, id[:], store.MailboxQuery{Limit: 100, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	eventually(t, 20*time.Second, "deposited at both live hosts", func() bool {
		return len(list(honestStore)) == n && len(list(dropStore)) == n
	})
	kept := list(honestStore) // for the replay below
	// The dropper loses everything and serves garbage instead.
	var hashes [][]byte
	for _, e := range list(dropStore) {
		hashes = append(hashes, e.Hash)
	}
	if _, err := dropStore.Delete(ctx, id[:], hashes); err != nil {
		t.Fatal(err)
	}
	c := startClient(t)
	c.AddAddrs(dropper.PeerID, dropper.Addrs)
	for _, junk := range [][]byte{bytes.Repeat([]byte{0}, 500), []byte("not a sealed box"), append([]byte{1}, bytes.Repeat([]byte{7}, 400)...)} {
		if err := mailbox.Deposit(ctx, c, dropper.PeerID, id, junk); err != nil {
			t.Fatal(err)
		}
	}
	alice.stop()
	bob.start()
	eventually(t, 20*time.Second, "bob has every message", func() bool { return len(messages(t, bob, "alice")) >= n })
	eventually(t, 20*time.Second, "garbage and mail taken from both hosts", func() bool {
		return len(list(honestStore)) == 0 && len(list(dropStore)) == 0
	})
	// Replays: the honest host's envelopes come back, at both hosts.
	c.AddAddrs(honest.PeerID, honest.Addrs)
	for _, e := range kept {
		for _, h := range []MailboxHost{honest, dropper} {
			if err := mailbox.Deposit(ctx, c, h.PeerID, id, e.Envelope); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 20*time.Second, "replays taken", func() bool {
		return len(list(honestStore)) == 0 && len(list(dropStore)) == 0
	})
	alice.start()
	for _, mid := range sent {
		waitState(t, alice, "bob", mid, StateDelivered)
	}
	got := messages(t, bob, "alice")
	if len(got) != n {
		t.Fatalf("bob has %d messages, want exactly %d", len(got), n)
	}
	var st []MailboxStatus = bob.m.Mailboxes()
	if st[0].LastError == "" || st[2].LastOK.IsZero() {
		t.Errorf("mailbox status does not show the down host and the honest one: %+v", st)
	}
}

// TestReadReceipts: bob reads alice's messages and alice sees them
// "read"; with receipts off (carol), alice's stay "delivered"; a receipt
// also travels through a mailbox while alice is offline.
func TestReadReceipts(t *testing.T) {
	host, _, _ := startMailboxHost(t)
	alice, bob, carol := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	alice.pinAddr()
	alice.restartWith(withMailbox(host))
	carol.restartWith(func(c *Config) { c.NoReadReceipts = true })
	for _, p := range [][2]*tnode{{alice, bob}, {bob, alice}, {alice, carol}, {carol, alice}} {
		addContact(t, p[0], p[1])
	}
	ctx := context.Background()
	m1 := send(t, alice, "bob", "one")
	m2 := send(t, alice, "bob", "two")
	m3 := send(t, alice, "carol", "three")
	for _, w := range []struct {
		to string
		id string
	}{{"bob", m1.ID}, {"bob", m2.ID}, {"carol", m3.ID}} {
		waitState(t, alice, w.to, w.id, StateDelivered)
	}
	if n, err := bob.m.MarkRead(ctx, "alice", 0); err != nil || n != 2 {
		t.Fatalf("bob MarkRead = %d, %v", n, err)
	}
	waitState(t, alice, "bob", m1.ID, StateRead)
	waitState(t, alice, "bob", m2.ID, StateRead)
	if n, err := carol.m.MarkRead(ctx, "alice", 0); err != nil || n != 1 {
		t.Fatalf("carol MarkRead = %d, %v", n, err)
	}
	// Receipts off: nothing goes out (carol's outbox stays empty).
	time.Sleep(300 * time.Millisecond)
	if st := stateOf(t, alice, "carol", m3.ID); st != StateDelivered {
		t.Fatalf("carol sends no receipts, yet alice sees %q", st)
	}
	outbox := func(n *tnode, contact string) int {
		ci, _, err := n.m.Messages(ctx, contact, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		var k int
		n.st.View(ctx, func(tx *store.Tx) error { items, _ := tx.Outbox(ci.ID); k = len(items); return nil })
		return k
	}
	if k := outbox(carol, "alice"); k != 0 {
		t.Errorf("carol queued %d items", k)
	}
	// Through the mailbox: alice is offline when bob reads.
	m4 := send(t, alice, "bob", "four")
	waitState(t, alice, "bob", m4.ID, StateDelivered)
	alice.stop()
	if n, err := bob.m.MarkRead(ctx, "alice", 0); err != nil || n != 1 {
		t.Fatalf("bob MarkRead = %d, %v", n, err)
	}
	// The receipt leaves bob's outbox while alice is down: a host took it.
	eventually(t, 20*time.Second, "the receipt deposited", func() bool { return outbox(bob, "alice") == 0 })
	alice.start()
	waitState(t, alice, "bob", m4.ID, StateRead)
}

// TestQueuedDuringBackoffDeposited: bob is unreachable and alice's queue
// waits for its next attempt (an hour away here); a message she writes
// meanwhile goes to bob's mailbox host at once instead of waiting for
// the retry, and bob gets both, in order.
func TestQueuedDuringBackoffDeposited(t *testing.T) {
	host, ms, _ := startMailboxHost(t)
	alice := newNodeTuned(t, "alice", func(c *Config) { c.RetryMin, c.RetryMax = time.Hour, time.Hour })
	bob := newNode(t, "bob")
	bob.pinAddr()
	bob.restartWith(withMailbox(host))
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	bob.stop()

	first := send(t, alice, "bob", "first, while you were away")
	eventually(t, 20*time.Second, "the first message deposited", func() bool { return stateOf(t, alice, "bob", first.ID) == StateSent })
	second := send(t, alice, "bob", "second, written during the backoff")
	eventually(t, 20*time.Second, "the second message deposited without waiting for the retry", func() bool {
		return stateOf(t, alice, "bob", second.ID) == StateSent
	})
	if _, n, err := ms.TotalUsage(context.Background()); err != nil || n != 2 {
		t.Fatalf("the host holds %d envelopes (%v), want 2", n, err)
	}
	bob.start()
	eventually(t, 20*time.Second, "bob has both, in order", func() bool {
		got := messages(t, bob, "alice")
		return len(got) == 2 && got[0].Body == first.Body && got[1].Body == second.Body
	})
}
