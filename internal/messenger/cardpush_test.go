package messenger

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// revokePeer revokes device peer on a (which may be offline), as
// `samizdat devices revoke` does.
func revokePeer(t testing.TB, a *tnode, peer string) {
	t.Helper()
	ctx := context.Background()
	err := a.st.Update(ctx, func(tx *store.Tx) error {
		l, err := devices.Load(tx)
		if err != nil {
			return err
		}
		if _, err := l.Revoke(peer, a.n.PeerID(), a.m.now()); err != nil {
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

// heldCard is the card n holds of contact acct, and the contact's primary
// device.
func heldCard(t testing.TB, n *tnode, acct string) (*identity.Card, string) {
	var card *identity.Card
	var primary string
	_ = n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(acct)
		if err != nil {
			return err
		}
		primary = c.PeerID
		card, err = identity.ParseSignedCard(c.Card)
		return err
	})
	return card, primary
}

func deviceQueue(t testing.TB, n *tnode, peer string) []store.DeviceItem {
	var items []store.DeviceItem
	_ = n.st.View(context.Background(), func(tx *store.Tx) (err error) { items, err = tx.DeviceOutbox(peer); return err })
	return items
}

func outboxOf(t testing.TB, n *tnode, acct string) []store.OutboxItem {
	var items []store.OutboxItem
	_ = n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(acct)
		if err != nil {
			return err
		}
		items, err = tx.Outbox(c.ID)
		return err
	})
	return items
}

// TestCardPushedOnRevoke: alice revokes her phone and writes nothing; bob
// holds her new card at once (pushed), drops the copies he had queued for
// the offline phone, and what he sends next never goes to the phone.
func TestCardPushedOnRevoke(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	phone := linkDevice(t, alice, "phone")
	phonePeer := phone.n.PeerID()
	// Linking pushed the card listing the phone: bob fans out to it
	// without alice writing again.
	eventually(t, 20*time.Second, "bob holds alice's card with the phone", func() bool {
		card, _ := heldCard(t, bob, alice.m.AccountID())
		return card != nil && card.HasDevice(phonePeer)
	})
	send(t, bob, "alice", "hi both")
	eventually(t, 20*time.Second, "bob's message on the phone", func() bool { return hasMessage(t, phone, "bob", "hi both", false) })

	phone.stop()
	queued := send(t, bob, "alice", "queued for the phone")
	waitState(t, bob, "alice", queued.ID, StateDelivered) // the laptop has it
	if len(deviceQueue(t, bob, phonePeer)) == 0 {
		t.Fatal("bob queued no copy for the offline phone")
	}
	revokePeer(t, alice, phonePeer)
	eventually(t, 20*time.Second, "bob holds alice's card without the phone, pushed", func() bool {
		card, _ := heldCard(t, bob, alice.m.AccountID())
		return card != nil && !card.HasDevice(phonePeer)
	})
	if n := len(deviceQueue(t, bob, phonePeer)); n != 0 {
		t.Errorf("bob still queues %d copies for the revoked phone", n)
	}
	after := send(t, bob, "alice", "after the revocation")
	waitState(t, bob, "alice", after.ID, StateDelivered)
	if n := len(deviceQueue(t, bob, phonePeer)); n != 0 {
		t.Errorf("bob queued %d copies for the revoked phone after the revocation", n)
	}
	// The phone comes back: nothing of either message reaches it.
	phone.start()
	marker := send(t, alice, "bob", "marker")
	waitState(t, alice, "bob", marker.ID, StateDelivered)
	eventually(t, 20*time.Second, "the phone connected to bob", func() bool { return phone.n.IsConnected(bob.n.PeerID()) })
	for _, body := range []string{"queued for the phone", "after the revocation"} {
		if hasMessage(t, phone, "bob", body, false) {
			t.Errorf("the revoked phone got %q", body)
		}
	}
	if hasMessage(t, alice, "bob", "queued for the phone", false) != true {
		t.Error("the laptop lost bob's message")
	}
}

// TestRevokePrimaryWithQueuedMessages (issue 17): bob's messages wait for
// alice's laptop, his primary device of hers, when her phone revokes the
// laptop. Nothing is lost for the phone (its copies are delivered, sent
// since on the phone's session as the new primary), nothing more goes to
// the laptop, and no message is marked failed.
func TestRevokePrimaryWithQueuedMessages(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	phone := linkDevice(t, alice, "phone")
	laptopPeer, phonePeer, acct := alice.n.PeerID(), phone.n.PeerID(), alice.m.AccountID()
	eventually(t, 20*time.Second, "bob holds alice's card with the phone", func() bool {
		card, _ := heldCard(t, bob, acct)
		return card != nil && card.HasDevice(phonePeer)
	})
	if _, primary := heldCard(t, bob, acct); primary != laptopPeer {
		t.Fatalf("bob's primary device of alice is %s, want the laptop", shortPeer(primary))
	}
	// One message the phone gets at once, while the laptop is away.
	alice.stop()
	early := send(t, bob, "alice", "the laptop is away")
	waitState(t, bob, "alice", early.ID, StateDelivered)
	eventually(t, 20*time.Second, "the early message on the phone", func() bool { return hasMessage(t, phone, "bob", "the laptop is away", false) })
	// Then both of alice's devices are away: copies wait at bob for each.
	phone.stop()
	waiting := send(t, bob, "alice", "waiting for both")
	if len(outboxOf(t, bob, acct)) == 0 || len(deviceQueue(t, bob, phonePeer)) == 0 {
		t.Fatal("bob queued no copies for alice's devices")
	}
	bob.stop()
	// The phone revokes the laptop while bob is away, then bob returns.
	phone.start()
	revokePeer(t, phone, laptopPeer)
	bob.start()
	eventually(t, 30*time.Second, "bob's primary device of alice is the phone", func() bool {
		card, primary := heldCard(t, bob, acct)
		return card != nil && !card.HasDevice(laptopPeer) && primary == phonePeer
	})
	eventually(t, 30*time.Second, "the waiting message on the phone", func() bool { return hasMessage(t, phone, "bob", "waiting for both", false) })
	waitState(t, bob, "alice", waiting.ID, StateDelivered)
	later := send(t, bob, "alice", "after the revocation")
	waitState(t, bob, "alice", later.ID, StateDelivered)
	eventually(t, 20*time.Second, "the later message on the phone", func() bool { return hasMessage(t, phone, "bob", "after the revocation", false) })
	r := send(t, phone, "bob", "reply from the phone")
	waitState(t, phone, "bob", r.ID, StateDelivered)
	for _, body := range []string{"the laptop is away", "waiting for both", "after the revocation"} {
		if k := countMessages(t, phone, "bob", body); k != 1 {
			t.Errorf("the phone shows %q %d times", body, k)
		}
	}
	for _, m := range messages(t, bob, "alice") {
		if m.Outgoing && m.State == StateFailed {
			t.Errorf("bob's %q failed", m.Body)
		}
	}
	eventually(t, 20*time.Second, "bob's queues for alice empty", func() bool {
		return len(outboxOf(t, bob, acct)) == 0 && len(deviceQueue(t, bob, laptopPeer)) == 0 && len(deviceQueue(t, bob, phonePeer)) == 0
	})
	// The laptop comes back: it gets none of what was queued for it.
	alice.start()
	marker := send(t, bob, "alice", "marker")
	waitState(t, bob, "alice", marker.ID, StateDelivered)
	eventually(t, 20*time.Second, "the marker on the phone", func() bool { return hasMessage(t, phone, "bob", "marker", false) })
	for _, body := range []string{"waiting for both", "after the revocation", "marker"} {
		if hasMessage(t, alice, "bob", body, false) {
			t.Errorf("the revoked laptop got %q", body)
		}
	}
}

// TestCardUpdateDeviceCardsChecked: the device cards a card update carries
// are kept only when the contact's account signed them and they name
// first a device the contact's card lists: another account's card, and a
// card of the contact's account naming a device its card does not list
// (or garbage), are ignored; nothing else changes.
func TestCardUpdateDeviceCardsChecked(t *testing.T) {
	alice, bob, mallory := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "mallory")
	addContact(t, bob, alice)
	ctx := context.Background()
	malCard, err := mallory.m.card(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ghost, err := identity.NewDevice(alice.m.id.Public(), pub, nil, func(msg []byte) ([]byte, error) { return ed25519.Sign(priv, msg), nil })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ghostCard, err := identity.SignCard(alice.m.id, &identity.Card{Identity: alice.m.id.Public(), Name: "alice", Devices: []identity.Device{ghost},
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), Serial: uint64(now.UnixNano()), DeviceVersion: 9})
	if err != nil {
		t.Fatal(err)
	}
	aliceCard, err := alice.m.card(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = bob.st.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(alice.m.AccountID())
		if err != nil {
			return err
		}
		before := c.Card
		if err := bob.m.receiveCardUpdate(tx, c, &wirepb.CardUpdate{DeviceCards: [][]byte{malCard, ghostCard, []byte("junk"), aliceCard}}); err != nil {
			return err
		}
		if _, err := tx.DeviceCard(c.ID, mallory.n.PeerID()); err == nil {
			t.Error("bob kept another account's card as alice's device's")
		}
		if _, err := tx.DeviceCard(c.ID, ghost.PeerID); err == nil {
			t.Error("bob kept a card of a device alice's card does not list")
		}
		if _, err := tx.DeviceCard(c.ID, alice.n.PeerID()); err != nil {
			t.Errorf("bob did not keep alice's own device card: %v", err)
		}
		if cur, err := tx.Contact(c.ID); err != nil || string(cur.Card) != string(before) {
			t.Errorf("alice's card changed: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
