package messenger

import (
	"context"
	"crypto/rand"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// linkDevice makes a new node that is another device of a's account, as
// `samizdat link` does (without the link exchange, which internal/devices
// tests): the identity, contacts and groups handed over, the device
// certified under the account and added to both devices' lists, and both
// cards re-signed.
func linkDevice(t testing.TB, a *tnode, name string) *tnode {
	t.Helper()
	return linkDeviceTuned(t, a, name, nil)
}

// linkDeviceTuned is linkDevice with the new device's config changed by tune.
func linkDeviceTuned(t testing.TB, a *tnode, name string, tune func(*Config)) *tnode {
	t.Helper()
	ctx := context.Background()
	tn := &tnode{t: t, name: name, dir: t.TempDir(), key: make([]byte, store.KeySize), tune: tune}
	rand.Read(tn.key)
	var err error
	if tn.priv, _, err = p2p.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	prov, err := a.m.LinkProvision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(tn.dir, "db"), tn.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InstallLinked(ctx, st, a.m.id, prov, &devices.List{}, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	tn.start()
	t.Cleanup(tn.stop)
	dev, err := identity.NewDevice(a.m.id.Public(), tn.n.DeviceKey(), transportAddrs(tn.n.Addrs()), tn.n.SignDevice)
	if err != nil {
		t.Fatal(err)
	}
	dev.Name = name
	self, err := a.m.OwnDevice(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var list *devices.List
	err = a.st.Update(ctx, func(tx *store.Tx) error {
		if list, err = devices.Load(tx); err != nil {
			return err
		}
		list.Ensure(self, a.m.now())
		if err := list.Add(dev, a.m.now()); err != nil {
			return err
		}
		return devices.Save(tx, list)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.st.Update(ctx, func(tx *store.Tx) error { return devices.Save(tx, list) }); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, tn} {
		if err := n.m.DevicesChanged(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return tn
}

// revokeDevice revokes dev on a, as `samizdat devices revoke` does.
func revokeDevice(t testing.TB, a, dev *tnode) {
	t.Helper()
	ctx := context.Background()
	err := a.st.Update(ctx, func(tx *store.Tx) error {
		l, err := devices.Load(tx)
		if err != nil {
			return err
		}
		if _, err := l.Revoke(dev.n.PeerID(), a.n.PeerID(), a.m.now()); err != nil {
			return err
		}
		return devices.Save(tx, l)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.m.DevicesChanged(ctx); err != nil {
		t.Fatal(err)
	}
}

func hasMessage(t testing.TB, n *tnode, contact, body string, outgoing bool) bool {
	for _, m := range messages(t, n, contact) {
		if m.Body == body && m.Outgoing == outgoing {
			return true
		}
	}
	return false
}

func countMessages(t testing.TB, n *tnode, contact, body string) int {
	k := 0
	for _, m := range messages(t, n, contact) {
		if m.Body == body {
			k++
		}
	}
	return k
}

// TestFanoutToEveryDevice is issue 17's fan-out: bob's message reaches both
// of alice's devices, each on its own session; a reply from alice's second
// device reaches bob in the one chat with alice and shows on her first
// device as sent; once the second device is revoked it gets nothing more
// and bob refuses what it sends.
func TestFanoutToEveryDevice(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello from the laptop")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	phone := linkDevice(t, alice, "phone")

	// Bob learns alice's new card (listing the phone) with her next message.
	m1 := send(t, alice, "bob", "I have a phone now")
	waitState(t, alice, "bob", m1.ID, StateDelivered)
	eventually(t, 20*time.Second, "the laptop's message shown as sent on the phone", func() bool { return hasMessage(t, phone, "bob", "I have a phone now", true) })

	send(t, bob, "alice", "hi both")
	eventually(t, 20*time.Second, "bob's message on the laptop", func() bool { return hasMessage(t, alice, "bob", "hi both", false) })
	eventually(t, 20*time.Second, "bob's message on the phone", func() bool { return hasMessage(t, phone, "bob", "hi both", false) })

	r := send(t, phone, "bob", "reply from the phone")
	waitState(t, phone, "bob", r.ID, StateDelivered)
	eventually(t, 20*time.Second, "the phone's reply at bob", func() bool { return hasMessage(t, bob, "alice", "reply from the phone", false) })
	eventually(t, 20*time.Second, "the phone's reply shown as sent on the laptop", func() bool { return hasMessage(t, alice, "bob", "reply from the phone", true) })
	cs, err := bob.m.Contacts(context.Background())
	if err != nil || len(cs) != 1 {
		t.Fatalf("bob's contacts: %v, %v (want one alice)", cs, err)
	}
	// Each of alice's devices has a session of its own at bob.
	err = bob.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(alice.m.AccountID())
		if err != nil {
			return err
		}
		peers, err := tx.DeviceSessionPeers(c.ID)
		if len(peers) != 2 {
			t.Errorf("bob's sessions with alice's devices: %v", peers)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Shown once, on every device, after the copies and acks settle.
	send(t, bob, "alice", "marker")
	eventually(t, 20*time.Second, "the marker on the phone", func() bool { return hasMessage(t, phone, "bob", "marker", false) })
	for _, n := range []*tnode{alice, phone} {
		if k := countMessages(t, n, "bob", "hi both"); k != 1 {
			t.Errorf("%s shows bob's message %d times", n.name, k)
		}
	}

	// Revoked: bob learns it with alice's next message, then sends.
	stolenDevice(phone) // it keeps sending: bob must refuse it by himself
	revokeDevice(t, alice, phone)
	m2 := send(t, alice, "bob", "the phone is gone")
	waitState(t, alice, "bob", m2.ID, StateDelivered)
	eventually(t, 20*time.Second, "bob holds alice's card without the phone", func() bool {
		var held *identity.Card
		_ = bob.st.View(context.Background(), func(tx *store.Tx) error {
			c, err := tx.ContactByAccount(alice.m.AccountID())
			if err == nil {
				held, err = identity.ParseSignedCard(c.Card)
			}
			return err
		})
		return held != nil && !held.HasDevice(phone.n.PeerID())
	})
	after := send(t, bob, "alice", "after the revocation")
	waitState(t, bob, "alice", after.ID, StateDelivered)
	own := send(t, alice, "bob", "laptop after the revocation")
	waitState(t, alice, "bob", own.ID, StateDelivered)
	signed := send(t, phone, "bob", "the stolen phone writes")
	eventually(t, 20*time.Second, "the revoked phone's message refused", func() bool {
		return stateOf(t, phone, "bob", signed.ID) == StateFailed
	})
	// Its sent copy to the laptop is refused too, until the phone gives
	// it up.
	eventually(t, 30*time.Second, "the laptop refused the revoked phone's sent copy", func() bool {
		var items []store.DeviceItem
		_ = phone.st.View(context.Background(), func(tx *store.Tx) (err error) { items, err = tx.DeviceOutbox(alice.n.PeerID()); return err })
		return len(items) == 0
	})
	if hasMessage(t, alice, "bob", "the stolen phone writes", true) {
		t.Error("the laptop took a sent copy from the revoked phone")
	}
	// Nothing of it reached bob, and nothing sent after reached the phone.
	if hasMessage(t, bob, "alice", "the stolen phone writes", false) {
		t.Error("bob took a message from the revoked phone")
	}
	for _, body := range []string{"after the revocation", "laptop after the revocation"} {
		if countMessages(t, phone, "bob", body) != 0 {
			t.Errorf("the revoked phone got %q", body)
		}
	}
	err = bob.st.View(context.Background(), func(tx *store.Tx) error {
		items, err := tx.DeviceOutbox(phone.n.PeerID())
		if len(items) != 0 {
			t.Errorf("bob still queues %d copies for the revoked phone", len(items))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFanoutOfflineDevicesThroughMailboxes: with both of alice's devices
// offline, bob leaves each its own copy with the mailbox hosts that
// device's own card names (each device has its own mailbox id); each
// device fetches its copy, one device's fetch leaving the other's, and
// each device's ack, once bob is back, clears that device's queue.
func TestFanoutOfflineDevicesThroughMailboxes(t *testing.T) {
	h, _, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNode(t, "bob")
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	m0 := send(t, alice, "bob", "I have a phone now")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	// The phone writes: bob gets its own card (its prekeys and mailbox).
	p0 := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p0.ID, StateDelivered)
	ctx := context.Background()
	var aliceID int64
	err := bob.st.View(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(alice.m.AccountID())
		if err != nil {
			return err
		}
		aliceID = c.ID
		b, err := tx.DeviceCard(c.ID, phone.n.PeerID())
		if err != nil {
			return err
		}
		card, err := identity.ParseSignedCard(b)
		if err != nil || len(card.Mailboxes) != 1 {
			t.Fatalf("bob holds the phone's card %+v, %v", card, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	alice.stop()
	phone.stop()
	sent := send(t, bob, "alice", "while you were both away")
	eventually(t, 30*time.Second, "both copies deposited", func() bool {
		var primary []store.OutboxItem
		var items []store.DeviceItem
		_ = bob.st.View(ctx, func(tx *store.Tx) (err error) {
			primary, _ = tx.Outbox(aliceID)
			items, err = tx.DeviceOutbox(phoneID(t, bob, aliceID))
			return err
		})
		return stateOf(t, bob, "alice", sent.ID) == StateSent && len(primary) == 1 && len(items) == 1 && items[0].Attempts > 0
	})
	bob.stop() // only the mailboxes have them now
	alice.start()
	eventually(t, 30*time.Second, "the laptop fetched its copy", func() bool { return hasMessage(t, alice, "bob", "while you were both away", false) })
	phone.start()
	eventually(t, 30*time.Second, "the phone fetched its own copy", func() bool { return hasMessage(t, phone, "bob", "while you were both away", false) })
	bob.start()
	waitState(t, bob, "alice", sent.ID, StateDelivered)
	eventually(t, 30*time.Second, "the phone's ack clears bob's copy for it", func() bool {
		var items []store.DeviceItem
		_ = bob.st.View(ctx, func(tx *store.Tx) (err error) { items, err = tx.DeviceOutbox(phoneID(t, bob, aliceID)); return err })
		return len(items) == 0
	})
}

// phoneID is the peer id of the device of contact cid that is not its
// primary one (the test's second device).
func phoneID(t testing.TB, n *tnode, cid int64) string {
	var out string
	_ = n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := tx.Contact(cid)
		if err != nil {
			return err
		}
		card, err := identity.ParseSignedCard(c.Card)
		if err != nil {
			return err
		}
		for _, d := range card.Devices {
			if d.PeerID != c.PeerID {
				out = d.PeerID
			}
		}
		return nil
	})
	return out
}

// TestFanoutDeliveredByOneDeviceNeverFails: bob's laptop (his primary
// device) stays offline past alice's give-up time while his phone acked
// her message: the message stays delivered, and the laptop's copy is
// given up.
func TestFanoutDeliveredByOneDeviceNeverFails(t *testing.T) {
	alice := newNodeTuned(t, "alice", func(c *Config) { c.GiveUpAfter = 5 * time.Second })
	bob := newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDevice(t, bob, "phone")
	m0 := send(t, bob, "alice", "I have a phone now")
	waitState(t, bob, "alice", m0.ID, StateDelivered)
	bobAcct := bob.m.AccountID()
	bob.stop()
	sent := send(t, alice, "bob", "only the phone is on")
	eventually(t, 30*time.Second, "the phone has it", func() bool { return hasMessage(t, phone, "alice", "only the phone is on", false) })
	waitState(t, alice, "bob", sent.ID, StateDelivered)
	eventually(t, 60*time.Second, "the laptop's copy given up", func() bool {
		var items []store.OutboxItem
		_ = alice.st.View(context.Background(), func(tx *store.Tx) (err error) {
			c, err := tx.ContactByAccount(bobAcct)
			if err == nil {
				items, err = tx.Outbox(c.ID)
			}
			return err
		})
		return len(items) == 0
	})
	if s := stateOf(t, alice, "bob", sent.ID); s != StateDelivered {
		t.Fatalf("a message the phone acked is %s once the laptop's copy was given up", s)
	}
}

// TestFanoutCopyForLostDeviceGivenUp: a copy for a device that never
// comes back (lost, not revoked, no mailbox) is given up after
// GiveUpAfter, as a message is; the message stays delivered by the other.
func TestFanoutCopyForLostDeviceGivenUp(t *testing.T) {
	alice := newNodeTuned(t, "alice", func(c *Config) { c.GiveUpAfter = 5 * time.Second })
	bob := newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDevice(t, bob, "phone")
	m0 := send(t, bob, "alice", "I have a phone now")
	waitState(t, bob, "alice", m0.ID, StateDelivered)
	phonePeer := phone.n.PeerID()
	phone.stop()
	queued := func() int {
		var items []store.DeviceItem
		_ = alice.st.View(context.Background(), func(tx *store.Tx) (err error) { items, err = tx.DeviceOutbox(phonePeer); return err })
		return len(items)
	}
	sent := send(t, alice, "bob", "the phone is lost")
	if queued() != 1 {
		t.Fatalf("alice queues %d copies for the phone, want 1", queued())
	}
	waitState(t, alice, "bob", sent.ID, StateDelivered)
	eventually(t, 60*time.Second, "the lost phone's copy given up", func() bool { return queued() == 0 })
	if s := stateOf(t, alice, "bob", sent.ID); s != StateDelivered {
		t.Fatalf("the message is %s", s)
	}
}

// TestDeviceRefusalsCountedThroughRetries: a device that refuses a copy,
// answers "retry" to the next attempt (a restarted session rate-limited),
// refuses again, and so on, gets the copy no more after fanRetryLimit
// attempts: the "retry" between two refusals does not start the count of
// refusals again (TestDevSyncRefused waited for ever on that once). A
// copy refused as from a revoked device is dropped at its first refusal.
func TestDeviceRefusalsCountedThroughRetries(t *testing.T) {
	ctx := context.Background()
	// Nothing is due before the test calls: the node's own delivery loop
	// leaves the queue alone.
	n := newNodeTuned(t, "alice", func(c *Config) { c.RetryMin, c.RetryMax = time.Hour, 2*time.Hour })
	peer := "12D3KooWGone" + n.n.PeerID()[12:]
	enqueue := func(id string) {
		t.Helper()
		err := n.st.Update(ctx, func(tx *store.Tx) error {
			return tx.EnqueueDevice(store.DeviceItem{PeerID: peer, Own: true, MessageID: id, Payload: []byte{1}, NextAttempt: time.Now().Add(time.Hour)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	queue := func() []store.DeviceItem {
		var items []store.DeviceItem
		_ = n.st.View(ctx, func(tx *store.Tx) (err error) { items, err = tx.DeviceOutbox(peer); return err })
		return items
	}
	answer := func(status wirepb.Response_Status, why string) {
		t.Helper()
		items := queue()
		if err := n.m.applyDeviceResponses(ctx, peer, deviceTarget{own: true}, items, []*wirepb.Response{{Status: status, Error: why, MessageId: []byte{1}}}); err != nil {
			t.Fatal(err)
		}
	}

	enqueue("00000000000000000000000000000001")
	refusals := 0
	for len(queue()) > 0 {
		if refusals > fanRetryLimit {
			t.Fatalf("still queued after %d refusals with \"retry\" between them: %+v", refusals, queue())
		}
		answer(wirepb.Response_STATUS_REJECTED, "cannot decrypt or parse")
		refusals++
		if refusals == 1 && len(queue()) == 0 {
			t.Fatal("dropped at the first refusal")
		}
		if len(queue()) > 0 {
			answer(wirepb.Response_STATUS_RETRY, "too many new sessions: try later")
		}
	}

	enqueue("00000000000000000000000000000002")
	answer(wirepb.Response_STATUS_REJECTED, RefusedRevoked)
	if q := queue(); len(q) != 0 {
		t.Fatalf("a copy refused as from a revoked device is still queued: %+v", q)
	}
}
