package messenger

import (
	"context"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// TestCardFromDirectory: bob moves his mail to another host while alice
// is offline, so no message of his carries the new card to her; he
// publishes it in the DHT. When alice cannot reach bob, she looks his card
// up there and deposits at the new host, which bob fetches.
func TestCardFromDirectory(t *testing.T) {
	ctx := context.Background()
	boot, err := p2p.New(ctx, p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, EnableDHT: true, DHTServer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	dht := func(pc *p2p.Config) {
		pc.EnableDHT, pc.DHTServer, pc.BootstrapPeers = true, true, boot.Addrs()
	}
	host1, ms1, _ := startMailboxHost(t)
	host2, ms2, _ := startMailboxHost(t)
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	for _, n := range []*tnode{alice, bob} {
		n.net = dht
		n.pinAddr()
	}
	bob.restartWith(withMailbox(host1))
	alice.restartWith(nil)
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	first := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", first.ID, StateDelivered)
	id := mailbox.KeyID(bob.m.mailboxKeys()[0])

	alice.stop()
	bob.restartWith(withMailbox(host2)) // a new card: new host
	if _, err := bob.m.card(ctx); err != nil {
		t.Fatal(err)
	}
	_, serial := bob.m.currentCard()
	// A put that reached the network (boot), not just bob's own store.
	eventually(t, 20*time.Second, "bob's new card published", func() bool {
		return bob.m.publishCard(ctx, bob.m.directory()) == nil
	})
	rec, err := boot.GetValue(ctx, cardRecordKey(bob.m.acct))
	if err != nil {
		t.Fatal(err)
	}
	if c, _, err := identity.OpenCardRecord(bob.m.acct, rec); err != nil || c.Serial != serial {
		t.Fatalf("the DHT has %v, %v; want serial %d", c, err, serial)
	}
	bob.stop()

	alice.start()
	m := send(t, alice, "bob", "where are you now?")
	eventually(t, 20*time.Second, "deposited at bob's new host", func() bool {
		_, n, _ := ms2.Usage(ctx, id[:])
		return n == 1
	})
	if _, n, _ := ms1.Usage(ctx, id[:]); n != 0 {
		t.Errorf("the old host got %d envelopes", n)
	}
	bob.start()
	waitState(t, alice, "bob", m.ID, StateDelivered)
}
