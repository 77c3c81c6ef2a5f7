package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCommitVFS measures the messenger's hot transaction (as
// BenchmarkInsertMessage) on each VFS, to show what encryption at rest
// costs per durable commit.
func BenchmarkCommitVFS(b *testing.B) {
	for _, v := range []string{encryptedVFS, encryptedBaseVFS, "xts", "os"} {
		b.Run(v, func(b *testing.B) {
			s, err := open(filepath.Join(b.TempDir(), "bench.db"), testKey(1), v)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			c := addContact(b, s, "acc", "Bench")
			body := "a typical chat message of some sixty bytes, with a few words"
			state := bytes.Repeat([]byte{7}, 1024)
			payload := bytes.Repeat([]byte{9}, 512)
			b.ReportAllocs()
			start, cpu0 := time.Now(), cpuTime()
			for i := 0; b.Loop(); i++ {
				err := s.Update(ctx, func(tx *Tx) error {
					id := fmt.Sprintf("%016x", i)
					if _, err := tx.InsertMessage(&Message{ID: id, ContactID: c, Outgoing: true, Body: body}); err != nil {
						return err
					}
					if err := tx.PutSession(c, state); err != nil {
						return err
					}
					return tx.Enqueue(OutboxItem{MessageID: id, ContactID: c, Payload: payload})
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// cpuTime returns the process's user + system CPU time: steadier than
// wall time on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
