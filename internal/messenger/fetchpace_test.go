package messenger

import (
	"context"
	"testing"
	"time"
)

// TestFetchPace: empty checks back off from the interval to ten times it;
// mail found or a kick (reset) brings the wait back to the interval.
func TestFetchPace(t *testing.T) {
	p := newFetchPace(30 * time.Second)
	var got []time.Duration
	for range 6 {
		got = append(got, p.next(0))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits after empty checks = %v, want %v", got, want)
		}
	}
	if d := p.next(3); d != 30*time.Second {
		t.Errorf("wait after a check that found mail = %v, want 30s", d)
	}
	if d := p.next(0); d != time.Minute {
		t.Errorf("the next empty check waits %v, want 1m (backing off again)", d)
	}
	p.next(0)
	p.reset()
	if d := p.next(0); d != 30*time.Second {
		t.Errorf("wait after a kick = %v, want 30s", d)
	}
}

// TestFetchWhenBackOnline: a node with no peers whose mailboxes are not
// due for an hour checks them at once when a peer connects (the network
// came back): mail left meanwhile does not wait for the backed-off check.
func TestFetchWhenBackOnline(t *testing.T) {
	host, _, _ := startMailboxHost(t)
	bob := newNodeTuned(t, "bob", func(c *Config) {
		c.MailboxHosts = []MailboxHost{host}
		c.FetchInterval = time.Hour
	})
	var first time.Time
	eventually(t, 20*time.Second, "the first check", func() bool {
		mb := bob.m.Mailboxes()
		first = mb[0].LastOK
		return !first.IsZero()
	})
	carol := newNode(t, "carol")
	if err := carol.n.Connect(context.Background(), bob.n.PeerID(), bob.n.Addrs()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a check when a peer connected", func() bool {
		return bob.m.Mailboxes()[0].LastCheck.After(first)
	})
}
