package messenger

import (
	"context"
	"io"
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
