package messenger

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// stalledDHT is a node whose DHT lookups hang until their deadline, as
// they do when the DHT has no answering peers.
type stalledDHT struct{ *p2p.Node }

func (stalledDHT) GetValue(ctx context.Context, _ string) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestDepositBeforeCardLookup: a contact that cannot be reached gets the
// queued message at its mailbox hosts after a short grace
// (cardLookupGrace), not only after the DHT lookup for its newer card,
// which can hang for a stream timeout (10 minutes here): a sender who
// goes offline soon after sending has left it with the hosts.
func TestDepositBeforeCardLookup(t *testing.T) {
	h, ms, _ := startTracedHost(t, io.Discard)
	bob := newNodeTuned(t, "bob", func(c *Config) { c.MailboxHosts = []MailboxHost{h} })
	alice := newNodeTuned(t, "alice", func(c *Config) {
		c.Transport = stalledDHT{c.Transport.(*p2p.Node)}
		c.StreamTimeout = 10 * time.Minute // the lookup hangs for as long
	})
	addContact(t, alice, bob)
	mb := ownMailboxID(t, bob)
	bob.stop()

	m := send(t, alice, "bob", "written as the laptop closes")
	eventually(t, 30*time.Second, "the message at bob's mailbox host", func() bool {
		_, n, err := ms.Usage(context.Background(), mb)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	waitState(t, alice, "bob", m.ID, StateSent) // marked once the host accepted it
}
