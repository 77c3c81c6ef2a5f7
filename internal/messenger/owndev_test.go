package messenger

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// Our own devices' paths through our mailboxes (issue 17), where no
// transport names the device an envelope comes from.

// mailboxCount returns a counter of the envelopes a mailbox host holds
// under mailbox id mb.
func mailboxCount(t testing.TB, ms *store.MailboxStore, mb []byte) func() int64 {
	return func() int64 {
		_, n, err := ms.Usage(context.Background(), mb)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// ownInitiation reports whether n's session with its own device peer
// still carries its initiation (the device never wrote back on it).
func ownInitiation(t testing.TB, n *tnode, peer string) bool {
	t.Helper()
	pending := false
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		rec, err := loadDevRecord(tx, 0, peer)
		pending = err == nil && len(rec.Sessions) > 0 && len(rec.Sessions[0].Initiation) > 0
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return pending
}

// TestOwnInitiationRepeatedThroughMailbox: the laptop starts a new
// session with the phone (as after a refusal) and its first copy reaches
// the phone direct; the phone never writes back on it, so the laptop's
// next copy, deposited while the phone is away, carries the same
// initiation again. Fetched from the phone's mailbox, where no transport
// names the device, it must be taken as the repeat it is: the check made
// before the write tried it on a blank record, refused it as "one-time
// prekey already used", and the host deleted it: the copy was lost.
func TestOwnInitiationRepeatedThroughMailbox(t *testing.T) {
	ctx := context.Background()
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	phonePeer := phone.n.PeerID()
	p0 := send(t, phone, "bob", "hello from the phone") // the laptop gets the phone's own card
	waitState(t, phone, "bob", p0.ID, StateDelivered)
	eventually(t, 20*time.Second, "the phone's message shown as sent on the laptop", func() bool { return hasMessage(t, alice, "bob", "hello from the phone", true) })
	eventually(t, 20*time.Second, "the laptop's queue for the phone empty", func() bool { return ownQueueEmpty(t, alice, phonePeer) })
	if !ownCardHeld(t, alice, phonePeer) {
		t.Fatal("the laptop holds no card of the phone")
	}
	// A new session, which the phone has nothing to answer on.
	if err := alice.st.Update(ctx, func(tx *store.Tx) error { return tx.DeleteDeviceSession(0, phonePeer) }); err != nil {
		t.Fatal(err)
	}
	m1 := send(t, alice, "bob", "direct, on a new session")
	eventually(t, 20*time.Second, "the first copy on the phone", func() bool { return hasMessage(t, phone, "bob", "direct, on a new session", true) })
	eventually(t, 20*time.Second, "the laptop's queue for the phone empty", func() bool { return ownQueueEmpty(t, alice, phonePeer) })
	waitState(t, alice, "bob", m1.ID, StateDelivered)
	if !ownInitiation(t, alice, phonePeer) {
		t.Fatal("the laptop's new session with the phone carries no initiation: nothing to repeat")
	}

	phoneMB := ownMailboxID(t, phone)
	count := mailboxCount(t, ms, phoneMB)
	phone.stop()
	m2 := send(t, alice, "bob", "through the mailbox, same session")
	sentCopyParked(t, alice, phonePeer, m2.ID)
	if !ownInitiation(t, alice, phonePeer) {
		t.Fatal("the deposited copy carries no initiation")
	}
	alice.stop() // only the phone's mailbox has the copy now
	if count() == 0 {
		t.Fatal("nothing deposited for the phone")
	}
	phone.start()
	eventually(t, 30*time.Second, "the phone's mailbox taken", func() bool { return count() == 0 })
	if !hasMessage(t, phone, "bob", "through the mailbox, same session", true) {
		t.Fatal("the phone took the laptop's copy from its mailbox and does not show it: refused")
	}
}

// TestOwnNewSessionTwiceInOnePage: the phone is away when a tablet is
// linked and writes twice; the tablet never had a session with the phone,
// so both copies, deposited with the phone's mailbox host, carry the
// initiation of one new session, and the phone fetches them in one page.
// The second must be found on the session the first started in the same
// transaction: the phone looked for its repeat among the sessions in the
// store only, tried it on a blank record, refused it as "one-time prekey
// already used", and the host deleted it.
func TestOwnNewSessionTwiceInOnePage(t *testing.T) {
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	phonePeer := phone.n.PeerID()
	p0 := send(t, phone, "bob", "hello from the phone") // the laptop gets the phone's own card
	waitState(t, phone, "bob", p0.ID, StateDelivered)
	eventually(t, 20*time.Second, "the laptop holds the phone's card", func() bool { return ownCardHeld(t, alice, phonePeer) })
	eventually(t, 20*time.Second, "the laptop's queue for the phone empty", func() bool { return ownQueueEmpty(t, alice, phonePeer) })
	count := mailboxCount(t, ms, ownMailboxID(t, phone))

	phone.stop()
	tablet := linkDeviceTuned(t, alice, "tablet", withHost)
	eventually(t, 20*time.Second, "the tablet holds the phone's card", func() bool { return ownCardHeld(t, tablet, phonePeer) })
	// The phone learns of the tablet from the laptop, through its mailbox.
	eventually(t, 30*time.Second, "the laptop's changes for the phone deposited", func() bool {
		for _, it := range deviceQueue(t, alice, phonePeer) {
			if !depositedFor(alice, phonePeer, it.MessageID) {
				return false
			}
		}
		return count() > 0
	})
	tabletPeer := tablet.n.PeerID()
	t1 := send(t, tablet, "bob", "from the tablet, one")
	t2 := send(t, tablet, "bob", "from the tablet, two")
	sentCopyParked(t, tablet, phonePeer, t1.ID)
	sentCopyParked(t, tablet, phonePeer, t2.ID)
	alice.stop()
	tablet.stop() // only the phone's mailbox has the copies now

	phone.start()
	eventually(t, 30*time.Second, "the phone's mailbox taken", func() bool { return count() == 0 })
	eventually(t, 10*time.Second, "the tablet in the phone's list", func() bool { return deviceList(t, phone).IsActive(tabletPeer) })
	for _, body := range []string{"from the tablet, one", "from the tablet, two"} {
		if !hasMessage(t, phone, "bob", body, true) {
			t.Errorf("the phone took the tablet's copy %q from its mailbox and does not show it: refused", body)
		}
	}
}

// emptyMailbox deletes at the host everything mailbox id mb holds.
func emptyMailbox(t testing.TB, ms *store.MailboxStore, mb []byte) {
	t.Helper()
	ctx := context.Background()
	page, _, err := ms.List(ctx, mb, store.MailboxQuery{Limit: 1000, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	for _, e := range page {
		hashes = append(hashes, e.Hash)
	}
	if _, err := ms.Delete(ctx, mb, hashes); err != nil {
		t.Fatal(err)
	}
}

// TestOwnUnknownDeviceThroughMailboxWaits: a tablet linked while the
// phone was away writes; its copy reaches the phone through the phone's
// mailbox before the device list that names the tablet does (the
// laptop's changes for the phone are late). The copy must wait in the
// mailbox ("later", as a stream from such a device is answered,
// TestDevSyncUnknownDeviceWaits) and be taken once the list arrives: the
// phone refused it for good as from a revoked device, and the host
// deleted it.
func TestOwnUnknownDeviceThroughMailboxWaits(t *testing.T) {
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNode(t, "bob")
	alice.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	phone.pinAddr()
	phonePeer := phone.n.PeerID()
	p0 := send(t, phone, "bob", "hello from the phone") // the laptop gets the phone's own card
	waitState(t, phone, "bob", p0.ID, StateDelivered)
	eventually(t, 20*time.Second, "the laptop holds the phone's card", func() bool { return ownCardHeld(t, alice, phonePeer) })
	eventually(t, 20*time.Second, "the laptop's queue for the phone empty", func() bool { return ownQueueEmpty(t, alice, phonePeer) })
	phoneMB := ownMailboxID(t, phone)
	count := mailboxCount(t, ms, phoneMB)

	phone.stop()
	tablet := linkDeviceTuned(t, alice, "tablet", withHost)
	tabletPeer := tablet.n.PeerID()
	eventually(t, 20*time.Second, "the tablet holds the phone's card", func() bool { return ownCardHeld(t, tablet, phonePeer) })
	eventually(t, 30*time.Second, "the laptop's changes for the phone deposited", func() bool {
		for _, it := range deviceQueue(t, alice, phonePeer) {
			if !depositedFor(alice, phonePeer, it.MessageID) {
				return false
			}
		}
		return count() > 0
	})
	// The laptop's changes are late: gone from the phone's mailbox (still
	// queued on the laptop, which is away).
	alice.stop()
	emptyMailbox(t, ms, phoneMB)
	t1 := send(t, tablet, "bob", "from the tablet")
	sentCopyParked(t, tablet, phonePeer, t1.ID)
	tablet.stop() // only the phone's mailbox has the copy now
	if count() == 0 {
		t.Fatal("nothing deposited for the phone")
	}

	phone.start()
	eventually(t, 30*time.Second, "the phone fetched its mailbox", func() bool {
		for _, s := range phone.m.Mailboxes() {
			if s.Fetched > 0 {
				return true
			}
		}
		return false
	})
	if deviceList(t, phone).Find(tabletPeer) != nil {
		t.Fatal("the phone knows the tablet already")
	}
	alice.start() // the phone learns the list from the laptop
	eventually(t, 20*time.Second, "the tablet in the phone's list", func() bool { return deviceList(t, phone).IsActive(tabletPeer) })
	eventually(t, 20*time.Second, "the tablet's copy on the phone, from its mailbox", func() bool { return hasMessage(t, phone, "bob", "from the tablet", true) })
	eventually(t, 20*time.Second, "the phone's mailbox taken", func() bool { return count() == 0 })
}

// TestOwnGroupControlAckedThroughMailbox: a group control the laptop
// queues for the phone (its sender key of a new group) is deposited with
// the phone's mailbox host while the phone is away; the phone takes it
// and answers with an ack through the laptop's mailbox. That ack must
// clear the laptop's copy, as it clears a sent copy's: it named the
// envelope's id, the queue held the item as "grp-" and that id, and the
// copy stayed queued, deposited again at each start, until the two
// devices happened to meet.
func TestOwnGroupControlAckedThroughMailbox(t *testing.T) {
	ctx := context.Background()
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	laptop := newNodeTuned(t, "alice", withHost)
	phone := linkDeviceTuned(t, laptop, "phone", withHost)
	laptopPeer, phonePeer := laptop.n.PeerID(), phone.n.PeerID()
	eventually(t, 20*time.Second, "each device holds the other's card", func() bool {
		return ownCardHeld(t, laptop, phonePeer) && ownCardHeld(t, phone, laptopPeer)
	})
	eventually(t, 20*time.Second, "both queues empty", func() bool {
		return ownQueueEmpty(t, laptop, phonePeer) && ownQueueEmpty(t, phone, laptopPeer)
	})
	laptopMB := mailboxCount(t, ms, ownMailboxID(t, laptop))

	phone.stop()
	g, err := laptop.m.CreateGroup(ctx, "while the phone is away")
	if err != nil {
		t.Fatal(err)
	}
	groupItems := func() (n int) {
		for _, it := range deviceQueue(t, laptop, phonePeer) {
			if strings.HasPrefix(it.MessageID, groupItemPrefix) {
				n++
			}
		}
		return n
	}
	if groupItems() == 0 {
		t.Fatal("no group control queued for the phone")
	}
	eventually(t, 30*time.Second, "the laptop's copies for the phone deposited", func() bool {
		for _, it := range deviceQueue(t, laptop, phonePeer) {
			if !depositedFor(laptop, phonePeer, it.MessageID) {
				return false
			}
		}
		return true
	})
	laptop.stop()
	held := laptopMB()
	phone.start()
	eventually(t, 30*time.Second, "the group on the phone", func() bool {
		gi, err := phone.m.Group(ctx, g.ID)
		return err == nil && !gi.Gone
	})
	eventually(t, 30*time.Second, "the phone's ack deposited for the laptop", func() bool {
		for _, it := range deviceQueue(t, phone, laptopPeer) {
			if strings.HasPrefix(it.MessageID, ackItemPrefix) {
				return false
			}
		}
		return laptopMB() > held
	})
	phone.stop()
	laptop.start()
	eventually(t, 30*time.Second, "the laptop's mailbox taken", func() bool { return laptopMB() == 0 })
	if n := groupItems(); n > 0 {
		t.Fatalf("the phone's ack, taken from the laptop's mailbox, left %d group controls queued for it", n)
	}
}
