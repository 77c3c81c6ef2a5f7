package messenger

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
)

// ownMailboxID is the mailbox id n's own card names (its first host's).
func ownMailboxID(t testing.TB, n *tnode) []byte {
	t.Helper()
	b, err := n.m.card(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := identity.ParseSignedCard(b)
	if err != nil || len(c.Mailboxes) == 0 {
		t.Fatalf("%s's card names no mailbox: %+v %v", n.name, c, err)
	}
	return c.Mailboxes[0].ID
}

// TestMailboxAckPerDevice is issue 17's "each device fetches its own
// copies; the ack of one device does not delete another's copy", at the
// mailbox host itself: with both of alice's devices offline, bob's message
// is deposited once under each device's own mailbox id; the laptop's
// fetch and ack empty its mailbox and leave the phone's copy at the host,
// which the phone then fetches.
func TestMailboxAckPerDevice(t *testing.T) {
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNode(t, "bob")
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	m0 := send(t, alice, "bob", "I have a phone now")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	p0 := send(t, phone, "bob", "hello from the phone") // bob gets the phone's own card
	waitState(t, phone, "bob", p0.ID, StateDelivered)
	laptopMB, phoneMB := ownMailboxID(t, alice), ownMailboxID(t, phone)
	if string(laptopMB) == string(phoneMB) {
		t.Fatal("both devices use one mailbox id")
	}
	ctx := context.Background()
	count := func(mb []byte) int64 {
		_, n, err := ms.Usage(ctx, mb)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	alice.stop()
	phone.stop()
	laptop0, phone0 := count(laptopMB), count(phoneMB)
	send(t, bob, "alice", "while you were both away")
	eventually(t, 30*time.Second, "a copy deposited for each device", func() bool {
		return count(laptopMB) > laptop0 && count(phoneMB) > phone0
	})
	bob.stop() // only the mailbox host has the copies now
	phoneHeld := count(phoneMB)

	alice.start()
	eventually(t, 30*time.Second, "the laptop fetched its copy", func() bool { return hasMessage(t, alice, "bob", "while you were both away", false) })
	eventually(t, 30*time.Second, "the laptop's ack emptied its mailbox", func() bool { return count(laptopMB) == 0 })
	// The laptop may add to the phone's mailbox (what it tells its other
	// devices as it starts, devsync.go), never take from it; that bob's
	// copy is among what stays shows below: with bob gone, the phone can
	// only get it from there.
	if n := count(phoneMB); n < phoneHeld {
		t.Fatalf("the phone's mailbox holds %d envelopes after the laptop's fetch and ack, %d before", n, phoneHeld)
	}
	phone.start()
	eventually(t, 30*time.Second, "the phone fetched its own copy", func() bool { return hasMessage(t, phone, "bob", "while you were both away", false) })
	eventually(t, 30*time.Second, "the phone's ack emptied its mailbox", func() bool { return count(phoneMB) == 0 })
}

// TestContactDeviceInitiationThroughMailbox: alice's phone writes to bob
// for the first time while bob is off, so its new session's initiation
// reaches him through his mailbox, where no transport names the device.
// Bob must file the session under the phone (the card it carries names
// it first), not under alice's laptop: the phone's message is acked to
// the phone, a resend of it direct is a duplicate, not an unreadable
// envelope, and bob's next message reaches both devices with no refusal.
// (CI, TestCLISentCopyThroughMailbox: the session went into the laptop's
// record, and the phone's direct resend was refused as "cannot decrypt".)
func TestContactDeviceInitiationThroughMailbox(t *testing.T) {
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNodeTuned(t, "bob", withHost)
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	phonePeer := phone.n.PeerID()
	eventually(t, 30*time.Second, "bob holds alice's card with the phone", func() bool {
		card, _ := heldCard(t, bob, alice.m.AccountID())
		return card != nil && card.HasDevice(phonePeer)
	})
	count := mailboxCount(t, ms, ownMailboxID(t, bob))

	bob.stop()
	held := count()
	p0 := send(t, phone, "bob", "first from the phone, bob away")
	eventually(t, 30*time.Second, "the phone's initiation deposited for bob", func() bool { return count() > held })
	bob.start()
	eventually(t, 30*time.Second, "bob has the phone's message", func() bool { return hasMessage(t, bob, "alice", "first from the phone, bob away", false) })
	waitState(t, phone, "bob", p0.ID, StateDelivered)

	m1 := send(t, bob, "alice", "to both of you")
	waitState(t, bob, "alice", m1.ID, StateDelivered)
	eventually(t, 30*time.Second, "the laptop has bob's message", func() bool { return hasMessage(t, alice, "bob", "to both of you", false) })
	eventually(t, 30*time.Second, "the phone has bob's message", func() bool { return hasMessage(t, phone, "bob", "to both of you", false) })
	for _, n := range []*tnode{alice, phone, bob} {
		if f := n.m.Faults(); f[FaultRejected]+f[FaultRefused]+f[FaultUnreadableAck]+f[FaultUnknownAck] > 0 {
			t.Errorf("%s: faults %v", n.name, f)
		}
	}
}

// TestMailboxPageFromTwoDevices: one page of bob's mailbox holds a
// message from alice's phone, then one from her laptop, both on sessions
// bob has. The check made before the write (sealedcheck.go) must try the
// laptop's on the laptop's session: it once kept the phone's record as
// the laptop's, refused the laptop's message as junk, and the host
// deleted it, lost while the laptop was off.
func TestMailboxPageFromTwoDevices(t *testing.T) {
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNodeTuned(t, "bob", withHost)
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	p0 := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p0.ID, StateDelivered)
	b0 := send(t, bob, "alice", "hi both")
	waitState(t, bob, "alice", b0.ID, StateDelivered)
	eventually(t, 30*time.Second, "bob's message on both devices", func() bool {
		return hasMessage(t, alice, "bob", "hi both", false) && hasMessage(t, phone, "bob", "hi both", false)
	})
	count := mailboxCount(t, ms, ownMailboxID(t, bob))

	bob.stop()
	held := count()
	send(t, phone, "bob", "from the phone, while bob is away")
	eventually(t, 30*time.Second, "the phone's message deposited", func() bool { return count() > held })
	phone.stop()
	held = count()
	send(t, alice, "bob", "from the laptop, while bob is away")
	eventually(t, 30*time.Second, "the laptop's message deposited", func() bool { return count() > held })
	alice.stop()

	bob.start()
	eventually(t, 30*time.Second, "bob has both messages from his mailbox", func() bool {
		return hasMessage(t, bob, "alice", "from the phone, while bob is away", false) &&
			hasMessage(t, bob, "alice", "from the laptop, while bob is away", false)
	})
}
