package messenger

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
)

// withMediaAndHost tunes a node to carry files (chunks in a directory of
// its own, kept across restarts) and to use mailbox host h.
func withMediaAndHost(t testing.TB, h MailboxHost) func(*Config) {
	dir := t.TempDir()
	return func(c *Config) {
		svc, err := media.New(media.Config{Dir: dir, Store: c.Store, Transport: c.Transport.(media.Transport), RetryInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Media = svc
		c.MailboxHosts = []MailboxHost{h}
		c.FetchInterval = 200 * time.Millisecond
	}
}

// ownCardHeld reports whether n holds the own card of its device peer.
func ownCardHeld(t testing.TB, n *tnode, peer string) bool {
	ok := false
	_ = n.st.View(context.Background(), func(tx *store.Tx) error {
		_, err := tx.DeviceCard(0, peer)
		ok = err == nil
		return nil
	})
	return ok
}

// sentCopyParked waits until from's copy of msgID for its device peer was
// tried (so deposited, the device being away).
func sentCopyParked(t testing.TB, from *tnode, peer, msgID string) {
	t.Helper()
	eventually(t, 30*time.Second, "the sent copy deposited", func() bool {
		for _, it := range deviceQueue(t, from, peer) {
			if it.MessageID == msgID && it.Own && it.Attempts > 0 {
				return depositedFor(from, peer, msgID)
			}
		}
		return false
	})
}

// TestSentCopyThroughMailbox (issue 17): alice's phone is away when her
// laptop writes to bob; the laptop deposits the sent copy with the phone's
// own mailbox host and goes offline. The phone, back, fetches it and shows
// it as sent; its ack, once the laptop is back, clears the laptop's copy.
func TestSentCopyThroughMailbox(t *testing.T) {
	h, _, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	phonePeer := phone.n.PeerID()
	// The phone writes once: the laptop gets its own card with a sent copy.
	p0 := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p0.ID, StateDelivered)
	eventually(t, 20*time.Second, "the phone's message shown as sent on the laptop", func() bool { return hasMessage(t, alice, "bob", "hello from the phone", true) })
	if !ownCardHeld(t, alice, phonePeer) {
		t.Fatal("the laptop holds no card of the phone")
	}

	phone.stop()
	m1 := send(t, alice, "bob", "written while the phone is away")
	waitState(t, alice, "bob", m1.ID, StateDelivered)
	sentCopyParked(t, alice, phonePeer, m1.ID)
	alice.stop() // only the phone's mailbox has the copy now
	phone.start()
	eventually(t, 30*time.Second, "the phone shows the laptop's message as sent", func() bool {
		return hasMessage(t, phone, "bob", "written while the phone is away", true)
	})
	alice.start()
	eventually(t, 30*time.Second, "the phone's ack clears the laptop's copy", func() bool {
		for _, it := range deviceQueue(t, alice, phonePeer) {
			if it.MessageID == m1.ID {
				return false
			}
		}
		return true
	})
	if k := countMessages(t, phone, "bob", "written while the phone is away"); k != 1 {
		t.Errorf("the phone shows the sent copy %d times", k)
	}
}

// TestSentCopyFile (issue 17): a file alice sends from her laptop can be
// saved on her phone: fetched from the laptop while it is online, and,
// for a file sent while the phone was away and the laptop is gone since,
// from bob's device, which fetched it too.
func TestSentCopyFile(t *testing.T) {
	h, _, _ := startTracedHost(t, io.Discard)
	alice := newNodeTuned(t, "alice", withMediaAndHost(t, h))
	bob := newNodeTuned(t, "bob", withMediaAndHost(t, h))
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", withMediaAndHost(t, h))
	ctx := context.Background()
	p0 := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p0.ID, StateDelivered)
	phonePeer := phone.n.PeerID()
	eventually(t, 20*time.Second, "the laptop holds the phone's card", func() bool { return ownCardHeld(t, alice, phonePeer) })

	saved := func(n *tnode, msgID string, want []byte) {
		t.Helper()
		eventually(t, 30*time.Second, n.name+" has the file", func() bool { return transferOf(t, n, msgID).State == media.StateComplete })
		out := filepath.Join(t.TempDir(), "saved")
		if err := n.m.SaveFile(ctx, msgID, out); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s's copy differs from the file sent (%v)", n.name, err)
		}
	}

	// Both online: the phone fetches from the laptop.
	path, data := writeRandom(t, 600<<10)
	f1, err := alice.m.SendFile(ctx, "bob", path, "first file")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the file shown as sent on the phone", func() bool { return hasMessage(t, phone, "bob", "first file", true) })
	saved(phone, f1.ID, data)

	// The phone away; bob fetches the file; the laptop leaves.
	phone.stop()
	path2, data2 := writeRandom(t, 700<<10)
	f2, err := alice.m.SendFile(ctx, "bob", path2, "second file")
	if err != nil {
		t.Fatal(err)
	}
	saved(bob, f2.ID, data2)
	sentCopyParked(t, alice, phonePeer, f2.ID)
	alice.stop()
	phone.start()
	eventually(t, 30*time.Second, "the second file shown as sent on the phone", func() bool { return hasMessage(t, phone, "bob", "second file", true) })
	saved(phone, f2.ID, data2)
}
