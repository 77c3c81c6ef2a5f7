package messenger

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// byteCounter counts what a mailbox host's trace receives.
type byteCounter struct{ n atomic.Int64 }

func (c *byteCounter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return len(b), nil
}

// BenchmarkMailboxCatchUp is issue 4's figures: the recipient comes online
// with b.N messages of 100 bytes waiting, spread over three mailbox hosts
// (each holds a copy of every message, as the sender deposits to up to
// three); measured from its start until all are decrypted and stored.
// Deposits are not timed. It also reports the bytes each host's mailbox
// service exchanged per message (deposit, fetch and delete of one copy,
// sealed box and padding included; libp2p's Noise and yamux framing not).
// Run it as
//
//	go test -run '^$' -bench MailboxCatchUp -benchtime 10000x ./internal/messenger
func BenchmarkMailboxCatchUp(b *testing.B) {
	hosts := make([]MailboxHost, 3)
	counters := make([]*byteCounter, len(hosts))
	stores := make([]*store.MailboxStore, len(hosts))
	for i := range hosts {
		counters[i] = &byteCounter{}
		hosts[i], stores[i], _ = startTracedHost(b, counters[i])
	}
	hostBytes := func() int64 {
		var n int64
		for _, c := range counters {
			n += c.n.Load()
		}
		return n
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
	before := hostBytes()
	for i := 0; i < b.N; i++ {
		m, err := alice.m.Send(ctx, "bob", fmt.Sprintf("%-100s", fmt.Sprintf("queued message %d", i)))
		if err != nil {
			b.Fatal(err)
		}
		last = m.ID
	}
	eventually(b, 30*time.Minute, "all deposited", func() bool { return stateOf(b, alice, "bob", last) == StateSent })
	alice.stop() // only the mailboxes have the messages now
	deposited := hostBytes() - before
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
	// Per copy at one host. Fetching also carries bob's acks to alice's
	// (absent) hosts: none here, alice has no mailbox hosts.
	eventually(b, time.Minute, "mailboxes emptied", func() bool {
		for _, ms := range stores {
			if _, n, err := ms.TotalUsage(ctx); err != nil || n > 0 {
				return false
			}
		}
		return true
	})
	copies := float64(b.N * len(hosts))
	b.ReportMetric(float64(deposited)/copies, "deposit-B/msg")
	b.ReportMetric(float64(hostBytes()-before)/copies, "host-B/msg")
}
