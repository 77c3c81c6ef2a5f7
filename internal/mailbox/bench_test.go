package mailbox

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"
)

// BenchmarkDepositFetch deposits n envelopes of 1 KiB into one mailbox over
// loopback, then fetches and deletes them all in one session; one op is
// the whole cycle. "Deposit" opens a stream per envelope (what a sender
// with one message does), "DepositBatch" sends them all on one stream.
func BenchmarkDepositFetch(b *testing.B) {
	const n = 1000
	for _, batch := range []bool{false, true} {
		name := "Deposit"
		if batch {
			name = "DepositBatch"
		}
		b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
			r := startRelay(b, nil, "", ServerConfig{RateLimit: RateLimit{PerSecond: -1}, MailboxRateLimit: RateLimit{PerSecond: -1}})
			sender, owner := r.client(b), r.client(b)
			server := r.node.PeerID()
			key := mustKey(b)
			id := KeyID(key)
			envs := make([][]byte, n)
			for i := range envs {
				envs[i] = make([]byte, 1024)
				rand.Read(envs[i])
			}
			ctx := testCtx(b)
			b.SetBytes(n * 1024)
			var depositing time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if batch {
					if k, err := DepositBatch(ctx, sender, server, id, envs); err != nil || k != n {
						b.Fatalf("DepositBatch = %d, %v", k, err)
					}
				} else {
					for _, e := range envs {
						if err := Deposit(ctx, sender, server, id, e); err != nil {
							b.Fatal(err)
						}
					}
				}
				depositing += time.Since(t0)
				s, err := OpenSession(ctx, owner, server, key)
				if err != nil {
					b.Fatal(err)
				}
				got := 0
				for {
					items, more, err := s.Next(ctx, MaxPageItems)
					if err != nil {
						b.Fatal(err)
					}
					hs := make([]Hash, len(items))
					for i, it := range items {
						hs[i] = it.Hash
					}
					if _, err := s.Delete(ctx, hs); err != nil {
						b.Fatal(err)
					}
					got += len(items)
					if !more {
						break
					}
				}
				s.Close()
				if got != n {
					b.Fatalf("fetched %d, want %d", got, n)
				}
			}
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*n) / 1e3 }
			b.ReportMetric(per(b.Elapsed()), "µs/envelope")
			b.ReportMetric(per(depositing), "µs/deposit")
			b.ReportMetric(per(b.Elapsed()-depositing), "µs/fetch+delete")
		})
	}
}
