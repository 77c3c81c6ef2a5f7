package app

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkEndToEnd measures messages from one node to another on
// loopback: b.N messages queued, until all are delivered (encrypted ack).
func BenchmarkEndToEnd(b *testing.B) {
	ctx := context.Background()
	p, err := NewBenchPair(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Latency(ctx, 5); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	d, err := p.Throughput(ctx, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
	// CPU time of both nodes per message: steadier than wall time on a
	// shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

// BenchmarkLatency measures send → delivered for one message at a time,
// beside the bare libp2p stream round trip between the same hosts.
func BenchmarkLatency(b *testing.B) {
	ctx := context.Background()
	p, err := NewBenchPair(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Latency(ctx, 5); err != nil {
		b.Fatal(err)
	}
	floor, err := p.Floor(ctx, 200)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	lat, err := p.Latency(ctx, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	p50, f50 := Percentile(lat, .5), Percentile(floor, .5)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(Percentile(lat, .99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(f50.Microseconds()), "floor-p50-µs")
	b.ReportMetric(float64(p50)/float64(f50), "x-floor")
}

// cpuTime returns the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSendOnly measures queueing alone (encrypt + one transaction).
func BenchmarkSendOnly(b *testing.B) {
	ctx := context.Background()
	p, err := NewBenchPair(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	p.B.Close() // nobody receives: measure the sender's queueing only
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.A.Messenger.Send(ctx, "b", fmt.Sprint("m", i)); err != nil {
			b.Fatal(err)
		}
	}
	_ = time.Second
}

// BenchmarkRelay runs `samizdat bench --relay` with b.N deposits from 20
// users × 4 depositors into 200 mailboxes, a stream each and then 50
// pipelined on each stream (catch-up of 1,000).
func BenchmarkRelay(b *testing.B) {
	res, err := RunRelayBench(context.Background(), RelayBenchOptions{Users: 20, PerUser: 4, Deposits: max(b.N, 100), Mailboxes: 200, CatchUp: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.DepositsPerSec, "deposits/s")
	b.ReportMetric(float64(res.CPUPerDeposit.Microseconds()), "cpu-µs/deposit")
	b.ReportMetric(res.DepositsPerCommit, "deposits/commit")
	b.ReportMetric(res.PipelinedPerSec, "pipelined-deposits/s")
	b.ReportMetric(float64(res.PipelinedCPU.Microseconds()), "pipelined-cpu-µs/deposit")
	b.ReportMetric(res.PipelinedPerCommit, "pipelined-deposits/commit")
	b.ReportMetric(res.CatchUpTime.Seconds()*1e3, "catchup-ms")
}

// BenchmarkRelayCatchUp runs the catch-up of `samizdat bench --relay`
// alone: b.N envelopes waiting in one mailbox, fetched and deleted.
func BenchmarkRelayCatchUp(b *testing.B) {
	res, err := RunRelayBench(context.Background(), RelayBenchOptions{Users: 2, PerUser: 1, Deposits: 10, Mailboxes: 2, Pipelined: -1, CatchUp: max(b.N, 100)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.CatchUpTime.Seconds()*1e3, "catchup-ms")
}
