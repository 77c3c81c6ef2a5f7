package messenger

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// TestDeviceCardFromDirectory (issue 17): alice links her phone while bob
// is offline, and the phone goes offline before its card reached him; bob
// holds alice's card listing the phone but not the phone's own card. When
// bob writes, he finds the phone's own card in the DHT (its prekeys and
// mailbox host) and deposits the phone's copy there, which the phone
// fetches when it is back, bob being gone.
func TestDeviceCardFromDirectory(t *testing.T) {
	ctx := context.Background()
	boot, err := p2p.New(ctx, p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, EnableDHT: true, DHTServer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	dht := func(pc *p2p.Config) {
		pc.EnableDHT, pc.DHTServer, pc.BootstrapPeers = true, true, boot.Addrs()
	}
	host, ms, _ := startMailboxHost(t)
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	for _, n := range []*tnode{alice, bob} {
		n.net = dht
		n.pinAddr()
		n.restartWith(nil)
	}
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	first := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", first.ID, StateDelivered)

	bob.stop()
	phone := linkDeviceTuned(t, alice, "phone", withMailbox(host))
	phone.net = dht
	phone.pinAddr()
	phone.restartWith(withMailbox(host))
	phonePeer := phone.n.PeerID()
	eventually(t, 20*time.Second, "the phone's own card published", func() bool {
		return phone.m.publishCard(ctx, phone.m.directory()) == nil
	})
	rec, err := boot.GetValue(ctx, deviceRecordKey(alice.m.AccountID(), phonePeer))
	if err != nil {
		t.Fatal(err)
	}
	if c, _, err := identity.OpenCardRecord(alice.m.AccountID(), rec); err != nil || c.Devices[0].PeerID != phonePeer || len(c.Mailboxes) != 1 {
		t.Fatalf("the phone's record holds %+v, %v", c, err)
	}
	id := mailbox.KeyID(phone.m.mailboxKeys()[0])
	phone.stop()

	bob.start()
	eventually(t, 20*time.Second, "bob holds alice's card listing the phone", func() bool {
		card, _ := heldCard(t, bob, alice.m.AccountID())
		return card != nil && card.HasDevice(phonePeer)
	})
	if ownCardOf(t, bob, alice.m.AccountID(), phonePeer) {
		t.Fatal("bob holds the phone's own card already: the test shows nothing")
	}
	m := send(t, bob, "alice", "for both of your devices")
	waitState(t, bob, "alice", m.ID, StateDelivered) // the laptop
	eventually(t, 30*time.Second, "the phone's copy deposited at its host", func() bool {
		_, n, _ := ms.Usage(ctx, id[:])
		return n >= 1 && depositedFor(bob, phonePeer, m.ID)
	})
	if !ownCardOf(t, bob, alice.m.AccountID(), phonePeer) {
		t.Error("bob did not keep the phone's card from the DHT")
	}
	bob.stop()
	phone.start()
	eventually(t, 30*time.Second, "the phone fetched bob's message", func() bool { return hasMessage(t, phone, "bob", "for both of your devices", false) })
}

// ownCardOf reports whether n holds the own card of device peer of
// contact acct.
func ownCardOf(t testing.TB, n *tnode, acct, peer string) bool {
	ok := false
	_ = n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(acct)
		if err != nil {
			return err
		}
		_, err = tx.DeviceCard(c.ID, peer)
		ok = err == nil
		return nil
	})
	return ok
}

// depositedFor reports whether n deposited its copy of msgID for device
// peer with a mailbox host (the memo depositDevice keeps).
func depositedFor(n *tnode, peer, msgID string) bool {
	n.m.mbMu.Lock()
	defer n.m.mbMu.Unlock()
	for k, ok := range n.m.deposited {
		if ok && strings.HasPrefix(k, "dev/"+peer+"/") && strings.HasSuffix(k, "/"+msgID) {
			return true
		}
	}
	return false
}
