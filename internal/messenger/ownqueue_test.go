package messenger

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Items for our own other devices (card updates, group controls) are
// queued under contact 0: an account with no contacts, or a group with
// no other member held as a contact, still reaches its own devices.

// ownDeviceCard is the own card n holds of its account's device peer
// (contact 0), or nil.
func ownDeviceCard(t testing.TB, n *tnode, peer string) *identity.Card {
	t.Helper()
	var card *identity.Card
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		b, err := tx.DeviceCard(0, peer)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		card, err = identity.ParseSignedCard(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return card
}

// cardItems counts the card updates n has queued for its device peer.
func cardItems(t testing.TB, n *tnode, peer string) int {
	k := 0
	for _, it := range deviceQueue(t, n, peer) {
		if strings.HasPrefix(it.MessageID, cardItemPrefix) {
			if !it.Own || it.ContactID != 0 {
				t.Errorf("card update for own device filed as own=%v contact=%d, want own under contact 0", it.Own, it.ContactID)
			}
			k++
		}
	}
	return k
}

// TestOwnCardUpdateWithoutContacts: an account with no contacts links a
// phone, which goes offline; the laptop links a tablet and a watch and
// revokes the watch. Its card update, queued for the phone under contact
// 0 (one: the newer supersedes the older), reaches the phone when it is
// back: the phone holds the laptop's newest card and the tablet's own
// card, which only the update carried (the tablet never reached the
// phone, and device-list sync carries no cards).
func TestOwnCardUpdateWithoutContacts(t *testing.T) {
	laptop := newNode(t, "alice")
	phone := linkDevice(t, laptop, "phone")
	phonePeer := phone.n.PeerID()
	phone.pinAddr()
	eventually(t, 20*time.Second, "the laptop holds the phone's card", func() bool { return ownDeviceCard(t, laptop, phonePeer) != nil })
	phone.stop()

	tablet := linkDevice(t, laptop, "tablet")
	watch := linkDevice(t, laptop, "watch")
	tabletPeer, watchPeer := tablet.n.PeerID(), watch.n.PeerID()
	eventually(t, 20*time.Second, "the laptop holds the tablet's own card", func() bool { return ownDeviceCard(t, laptop, tabletPeer) != nil })
	tablet.stop()
	watch.stop()
	if n := cardItems(t, laptop, phonePeer); n == 0 {
		t.Fatal("no card update queued for the phone (an account without contacts)")
	}
	revokePeer(t, laptop, watchPeer)
	if n := cardItems(t, laptop, phonePeer); n != 1 {
		t.Errorf("%d card updates queued for the phone, want 1 (the newest)", n)
	}
	laptopCard, err := identity.ParseSignedCard(mustOwnCard(t, laptop))
	if err != nil {
		t.Fatal(err)
	}
	if laptopCard.HasDevice(watchPeer) || !laptopCard.HasDevice(tabletPeer) {
		t.Fatal("the laptop's card after the revocation lists the watch, or not the tablet")
	}

	phone.start()
	eventually(t, 30*time.Second, "the card update delivered to the phone", func() bool { return cardItems(t, laptop, phonePeer) == 0 })
	eventually(t, 20*time.Second, "the phone holds the tablet's own card", func() bool { return ownDeviceCard(t, phone, tabletPeer) != nil })
	eventually(t, 20*time.Second, "the phone holds the laptop's newest card", func() bool {
		c := ownDeviceCard(t, phone, laptop.n.PeerID())
		return c != nil && c.Serial == laptopCard.Serial
	})
}

// mustOwnCard returns n's current signed card.
func mustOwnCard(t testing.TB, n *tnode) []byte {
	t.Helper()
	b, err := n.m.card(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOwnGroupWithoutContacts: a group created on the laptop of an
// account with no contacts (nobody else in it) is read and posted to from
// the phone: each device's sender key reaches the other under contact 0.
func TestOwnGroupWithoutContacts(t *testing.T) {
	ctx := context.Background()
	laptop := newNode(t, "alice")
	phone := linkDevice(t, laptop, "phone")
	g, err := laptop.m.CreateGroup(ctx, "notes to self")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the group on the phone", func() bool {
		gi, err := phone.m.Group(ctx, g.ID)
		return err == nil && !gi.Gone
	})
	if _, err := phone.m.GroupJoin(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.m.GroupSend(ctx, g.ID, "from the laptop"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the phone reads the laptop", func() bool { return groupHas(t, phone, g.ID, "from the laptop") })
	if _, err := phone.m.GroupSend(ctx, g.ID, "from the phone"); err != nil {
		t.Fatalf("the phone cannot post: %v", err)
	}
	eventually(t, 30*time.Second, "the laptop reads the phone", func() bool { return groupHas(t, laptop, g.ID, "from the phone") })
	gm, _ := groupMessageFrom(t, laptop, g.ID, "from the phone")
	if gm.Sender != laptop.m.AccountID() || !gm.Outgoing {
		t.Errorf("the laptop shows the phone's post from %s, outgoing %v; want ours", identity.Short(gm.Sender), gm.Outgoing)
	}
	// Both queues drain: each device took the other's controls.
	eventually(t, 20*time.Second, "the laptop's queue for the phone empty", func() bool { return ownQueueEmpty(t, laptop, phone.n.PeerID()) })
	eventually(t, 20*time.Second, "the phone's queue for the laptop empty", func() bool { return ownQueueEmpty(t, phone, laptop.n.PeerID()) })
}

// TestOwnItemsGivenUp: what the laptop queues for a phone that is lost
// but never revoked (changes, a group's sender key, card updates: no
// message of their own) is kept while younger than GiveUpAfter, whatever
// the attempts, and given up (logged) once older, as sent copies are.
func TestOwnItemsGivenUp(t *testing.T) {
	ctx := context.Background()
	laptop := newNode(t, "alice")
	phone := linkDevice(t, laptop, "phone")
	phonePeer := phone.n.PeerID()
	phone.stop() // lost, not revoked
	if _, err := laptop.m.CreateGroup(ctx, "while the phone is lost"); err != nil {
		t.Fatal(err)
	}
	own := func() (n, attempts int) {
		for _, it := range deviceQueue(t, laptop, phonePeer) {
			if it.Own && it.ContactID == 0 {
				n, attempts = n+1, max(attempts, it.Attempts)
			}
		}
		return n, attempts
	}
	if n, _ := own(); n == 0 {
		t.Fatal("nothing queued for the phone under contact 0")
	}
	eventually(t, 30*time.Second, "several attempts at the phone", func() bool { _, a := own(); return a >= 3 })
	if n, _ := own(); n == 0 {
		t.Fatal("the phone's queue was given up well before GiveUpAfter (a week)")
	}

	var logs syncBuffer
	laptop.restartWith(func(c *Config) {
		c.GiveUpAfter = time.Second
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	eventually(t, 30*time.Second, "the lost phone's queue given up", func() bool { n, _ := own(); return n == 0 })
	if !strings.Contains(string(logs.Bytes()), "msg=ownDeviceItemsGivenUp") {
		t.Errorf("no ownDeviceItemsGivenUp logged:\n%s", string(logs.Bytes()))
	}
	// The phone is still ours: what is changed now is queued for it again.
	if _, err := laptop.m.CreateGroup(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if n, _ := own(); n == 0 {
		t.Fatal("nothing queued for the phone after the give-up")
	}
}
