package store

import (
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMailboxDeposit measures deposits of 1 KiB envelopes into 1,000
// mailboxes from 64 concurrent depositors (a relay serving many senders at
// once), committed durably, with the default quotas checked.
func BenchmarkMailboxDeposit(b *testing.B) {
	m := openMailboxTest(b, filepath.Join(b.TempDir(), "mailbox.db"))
	q := MailboxQuota{PerMailbox: 64 << 20, Total: 1 << 40}
	var next atomic.Int64
	exp := time.Now().Add(time.Hour)
	b.SetParallelism(32) // × GOMAXPROCS depositors
	b.SetBytes(1024)
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		env := make([]byte, 1024)
		id := make([]byte, MailboxHashSize)
		for pb.Next() {
			i := next.Add(1)
			binary.LittleEndian.PutUint64(env, uint64(i))
			binary.LittleEndian.PutUint64(id, uint64(i%1000))
			h := sha256.Sum256(env)
			if _, err := m.Deposit(ctx, id, h[:], env, exp, q); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deposits/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/deposit")
	if txs, calls := m.db.GroupStats(); txs > 0 {
		b.ReportMetric(float64(calls)/float64(txs), "deposits/commit")
	}
}
