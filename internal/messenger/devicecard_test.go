package messenger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
)

// TestStrangerCannotClaimDevice is the attack of issue 14: mallory, a
// stranger to bob, sends him a first message through his mailbox (where
// no transport id can be checked) with a card that names alice's device,
// copied from alice's public card. Bob must not let that claim stand: his
// later contact with alice (her invite, her messages) works.
func TestStrangerCannotClaimDevice(t *testing.T) {
	host, ms, _ := startMailboxHost(t)
	alice, bob, mallory := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "mallory")
	bob.pinAddr()
	bob.restartWith(withMailbox(host))
	addContact(t, mallory, bob) // mallory has bob's invite; bob does not know her
	ctx := context.Background()
	aliceLink, err := alice.m.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	aliceInv, _ := identity.ParseInvite(aliceLink)
	mLink, _ := mallory.m.Invite(ctx)
	mInv, _ := identity.ParseInvite(mLink)
	forged := *mInv.Card
	forged.Devices = aliceInv.Card.Devices // her device, as her card shows it
	forged.Serial++
	signed, err := identity.SignCard(mallory.m.id, &forged)
	if err != nil {
		t.Fatal(err)
	}
	mallory.m.cardMu.Lock()
	mallory.m.ownCard, mallory.m.cardAddr, mallory.m.cardIssued = signed, mallory.n.PeerID()+"\n"+joinLines(transportAddrs(mallory.n.Addrs())), time.Now()
	mallory.m.cardMu.Unlock()

	bob.stop()
	m := send(t, mallory, "bob", "hello bob, this is alice's phone")
	eventually(t, 20*time.Second, "mallory's message deposited", func() bool { return stateOf(t, mallory, "bob", m.ID) == StateSent })
	bob.start()
	eventually(t, 20*time.Second, "bob fetched his mailbox", func() bool {
		_, n, err := ms.TotalUsage(ctx)
		return err == nil && n == 0
	})

	// Alice's real invite is accepted and her messages reach bob.
	if _, err := bob.m.AddContact(ctx, aliceLink, ""); err != nil {
		t.Fatalf("alice's own invite refused after a stranger claimed her device: %v", err)
	}
	addContact(t, alice, bob)
	r := send(t, alice, "bob", "it is really me")
	waitState(t, alice, "bob", r.ID, StateDelivered)
	got := messages(t, bob, "alice")
	if len(got) != 1 || got[0].Body != "it is really me" {
		t.Fatalf("bob has %+v from alice", got)
	}
	cs, _ := bob.m.Contacts(ctx)
	for _, c := range cs {
		if c.AccountID == mallory.m.AccountID() && c.PeerID == alice.n.PeerID() {
			t.Fatal("bob still files alice's device under mallory")
		}
	}
}

// TestFalseDeviceClaimReleased: a contact an older version filed under
// alice's device (its card, from before device certificates, never proved
// it) does not block alice's invite; the device moves to alice.
func TestFalseDeviceClaimReleased(t *testing.T) {
	alice, bob, mallory := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "mallory")
	ctx := context.Background()
	aliceLink, _ := alice.m.Invite(ctx)
	aliceInv, _ := identity.ParseInvite(aliceLink)
	mLink, _ := mallory.m.Invite(ctx)
	mInv, _ := identity.ParseInvite(mLink)
	old := *mInv.Card
	old.Devices = []identity.Device{{PeerID: alice.n.PeerID(), Addrs: alice.n.Addrs()}} // no certificate
	oldCard, err := identity.SignCard(mallory.m.id, &old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.ParseSignedCard(oldCard); !errors.Is(err, identity.ErrOldCard) {
		t.Fatalf("an uncertified card parses: %v", err)
	}
	err = bob.st.Update(ctx, func(tx *store.Tx) error {
		return tx.AddContact(&store.Contact{AccountID: mInv.AccountID, Name: "mallory", PeerID: alice.n.PeerID(), Card: oldCard, Created: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.m.AddContact(ctx, aliceLink, ""); err != nil {
		t.Fatalf("alice's invite refused: %v", err)
	}
	cs, _ := bob.m.Contacts(ctx)
	for _, c := range cs {
		switch c.AccountID {
		case aliceInv.AccountID:
			if c.PeerID != alice.n.PeerID() {
				t.Fatalf("alice's contact has peer %q", c.PeerID)
			}
		case mInv.AccountID:
			if c.PeerID != "" {
				t.Fatal("mallory keeps alice's device")
			}
		}
	}
	// And alice's messages reach bob.
	addContact(t, alice, bob)
	r := send(t, alice, "bob", "hi")
	waitState(t, alice, "bob", r.ID, StateDelivered)
}
