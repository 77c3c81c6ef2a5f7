package messenger

import (
	"context"
	"testing"
)

// TestChooseMailboxHosts: a host only announced (as in the DHT) is taken
// only if it answers the mailbox protocol; hosts that are down or that
// serve no mailbox are dropped; vouched hosts (named in a contact's card)
// come first; every probe went over a throwaway identity, so none of the
// hosts saw our device.
func TestChooseMailboxHosts(t *testing.T) {
	good1, _, _ := startMailboxHost(t)
	good2, _, _ := startMailboxHost(t)
	noMailbox := startClient(t) // a peer that announces but serves nothing
	down := MailboxHost{PeerID: startClient(t).PeerID(), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}
	// alice's card names good2: bob's contacts vouch for it.
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	alice.restartWith(withMailbox(good2))
	addContact(t, bob, alice)
	ctx := context.Background()
	vouched, err := bob.m.VouchedHosts(ctx)
	if err != nil || len(vouched) != 1 || vouched[0].PeerID != good2.PeerID {
		t.Fatalf("VouchedHosts = %v, %v; want alice's host", vouched, err)
	}
	found := []MailboxHost{down, {PeerID: noMailbox.PeerID(), Addrs: transportAddrs(noMailbox.Addrs())}, good1}
	got := bob.m.ChooseMailboxHosts(ctx, vouched, found, 3)
	if len(got) != 2 || got[0].PeerID != good2.PeerID || got[1].PeerID != good1.PeerID {
		t.Fatalf("chose %v, want the vouched host then the announced one that answers", got)
	}
	if h := bob.m.HostHealth(down.PeerID); h.Failed == 0 || h.OK != 0 {
		t.Errorf("health of the down host: %+v", h)
	}
	if h := bob.m.HostHealth(good1.PeerID); h.OK == 0 {
		t.Errorf("health of a good host: %+v", h)
	}
	for _, p := range []string{good1.PeerID, good2.PeerID, noMailbox.PeerID()} {
		if bob.n.IsConnected(p) {
			t.Errorf("bob's device connected to %s to probe it", p[:16])
		}
	}
}
