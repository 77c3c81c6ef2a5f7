package messenger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// BenchmarkMailboxCatchUp is issue 4's figure: the recipient comes online
// with b.N messages waiting, spread over three mailbox hosts (each holds a
// copy of every message, as the sender deposits to up to three); measured
// from its start until all are decrypted and stored. Deposits are not
// timed. Run it as
//
//	go test -run '^$' -bench MailboxCatchUp -benchtime 10000x ./internal/messenger
func BenchmarkMailboxCatchUp(b *testing.B) {
	hosts := make([]MailboxHost, 3)
	for i := range hosts {
		hosts[i], _, _ = startMailboxHost(b)
	}
	alice, bob := newNode(b, "alice"), newNode(b, "bob")
	bob.pinAddr()
	bob.restartWith(func(c *Config) { c.MailboxHosts = hosts; c.FetchInterval = time.Hour })
	addContact(b, alice, bob)
	addContact(b, bob, alice)
	first := send(b, alice, "bob", "session set-up")
	waitState(b, alice, "bob", first.ID, StateDelivered)
	bob.stop()
	ctx := context.Background()
	var last string
	for i := 0; i < b.N; i++ {
		m, err := alice.m.Send(ctx, "bob", fmt.Sprintf("queued message %d", i))
		if err != nil {
			b.Fatal(err)
		}
		last = m.ID
	}
	eventually(b, 30*time.Minute, "all deposited", func() bool { return stateOf(b, alice, "bob", last) == StateSent })
	alice.stop() // only the mailboxes have the messages now
	b.ResetTimer()
	t0 := time.Now()
	bob.start()
	// Count new rows incrementally: reloading the whole conversation on
	// every poll would cost more than what is measured.
	var seq int64
	count := 0
	eventually(b, 30*time.Minute, "all fetched", func() bool {
		bob.st.View(ctx, func(tx *store.Tx) error {
			ms, err := tx.Messages(1, seq, 0)
			for _, m := range ms {
				seq = m.Seq
				if !m.Outgoing {
					count++
				}
			}
			return err
		})
		return count == b.N+1
	})
	d := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(d.Seconds(), "catch-up-s")
	b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
}
