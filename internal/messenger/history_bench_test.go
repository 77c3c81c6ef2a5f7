package messenger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// BenchmarkHistoryTransfer hands the history of one chat of n messages
// (200-byte bodies, both directions) to a freshly linked device on
// loopback: export, seal, offer, fetch, check, import. Each iteration
// links a new device (not timed). Reported: the export's bytes and the
// time from the offer to the history stored.
//
//	go test -run '^$' -bench BenchmarkHistoryTransfer -benchtime 1x ./internal/messenger
func BenchmarkHistoryTransfer(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			alice, _ := mediaNode(b, "alice")
			bob, _ := mediaNode(b, "bob")
			addContact(b, alice, bob)
			body := strings.Repeat("m", 200)
			err := alice.st.Update(ctx, func(tx *store.Tx) error {
				c, err := tx.ContactByAccount(bob.m.AccountID())
				if err != nil {
					return err
				}
				for i := range n {
					id := make([]byte, 16)
					rand.Read(id)
					at := time.Now().Add(time.Duration(i-n) * time.Second)
					m := &store.Message{ID: hex.EncodeToString(id), ContactID: c.ID, Outgoing: i%2 == 0, Body: body, SentAt: at, At: at, State: StateRead}
					if _, err := tx.InsertMessage(m); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			alice.m.SetHistoryLimits(HistoryLimits{PerChat: n})
			var bytes int64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				alice2 := linkDeviceTuned(b, alice, "laptop", mediaTune(b, b.TempDir(), MailboxHost{}))
				b.StartTimer()
				if err := alice.m.SendHistory(ctx, alice2.n.PeerID()); err != nil {
					b.Fatal(err)
				}
				h := waitHistory(b, alice2, true, HistoryComplete, HistoryFailed)
				if h.State != HistoryComplete || h.Imported != n {
					b.Fatalf("history: %+v", h)
				}
				bytes = h.Bytes
				b.StopTimer()
				alice2.stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(bytes), "export-bytes")
			b.ReportMetric(float64(bytes)/float64(n), "bytes/msg")
		})
	}
}
