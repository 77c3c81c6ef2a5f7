package media

import (
	"context"
	"crypto/rand"
	"io"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// benchNodes are two real libp2p nodes on loopback, b connected to a.
func benchNodes(b testing.TB) (a, c *p2p.Node) {
	ctx := context.Background()
	mk := func() *p2p.Node {
		priv, _, err := p2p.GenerateKey()
		if err != nil {
			b.Fatal(err)
		}
		n, err := p2p.New(ctx, p2p.Config{PrivateKey: priv, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		return n
	}
	a, c = mk(), mk()
	addr := a.Addrs()[0]
	if err := c.Connect(ctx, a.PeerID(), []string{addr[:strings.Index(addr, "/p2p/")]}); err != nil {
		b.Fatal(err)
	}
	return a, c
}

const benchSize = 64 << 20

// BenchmarkFetchVsCopyLoopback alternates, in each iteration, a bare
// stream copy of 100 MiB and a fetch of a 100 MiB file over
// /samizdat/blob/1 between the same two nodes, so that both see the
// same load on a shared machine; it reports both rates, their ratio
// (the target: >= 0.7) and the most heap in use while fetching.
func BenchmarkFetchVsCopyLoopback(b *testing.B) {
	const size = 100 << 20
	a, c := benchNodes(b)
	src, _ := OpenChunks(b.TempDir())
	m := &Manifest{Name: "x", Size: size}
	rand.Read(m.Key[:])
	if err := Seal(src, io.LimitReader(rand.Reader, size), m); err != nil {
		b.Fatal(err)
	}
	a.Handle(Protocol, func(s p2p.Stream) { Serve(src, s) })
	buf := make([]byte, ChunkSize)
	a.Handle("/bench/copy/1", func(s p2p.Stream) {
		defer s.Close()
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	})
	var tCopy, tFetch, cCopy, cFetch time.Duration
	var peak uint64
	for range b.N {
		c0 := cpuTime()
		t0 := time.Now()
		s, err := c.OpenStream(context.Background(), a.PeerID(), "/bench/copy/1")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, s)
		s.Close()
		if n != size {
			b.Fatalf("copied %d", n)
		}
		tCopy += time.Since(t0)
		cCopy += cpuTime() - c0

		dst, _ := OpenChunks(b.TempDir())
		runtime.GC()
		stop := make(chan struct{})
		sampled := make(chan uint64)
		go func() {
			var ms runtime.MemStats
			var top uint64
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				runtime.ReadMemStats(&ms)
				top = max(top, ms.HeapInuse)
				select {
				case <-stop:
					sampled <- top
					return
				case <-t.C:
				}
			}
		}()
		c0 = cpuTime()
		t0 = time.Now()
		if err := Fetch(context.Background(), c, dst, m, []string{a.PeerID()}, nil); err != nil {
			b.Fatal(err)
		}
		tFetch += time.Since(t0)
		cFetch += cpuTime() - c0
		close(stop)
		peak = max(peak, <-sampled)
	}
	mbs := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(tCopy), "copy-MB/s")
	b.ReportMetric(mbs(tFetch), "fetch-MB/s")
	b.ReportMetric(tCopy.Seconds()/tFetch.Seconds(), "ratio")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	// CPU time of the process (both nodes) per 100 MiB: what the fetch
	// costs beyond the copy, whatever else the machine runs.
	b.ReportMetric(float64(cCopy.Milliseconds())/float64(b.N), "copy-cpu-ms")
	b.ReportMetric(float64(cFetch.Milliseconds())/float64(b.N), "fetch-cpu-ms")
}

// cpuTime is the CPU time (user and system) used by this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFetchLoopback fetches a 64 MiB file over /samizdat/blob/1
// between two nodes on loopback; compare with BenchmarkStreamCopyLoopback.
func BenchmarkFetchLoopback(b *testing.B) {
	a, c := benchNodes(b)
	src, _ := OpenChunks(b.TempDir())
	m := &Manifest{Name: "x", Size: benchSize}
	rand.Read(m.Key[:])
	if err := Seal(src, io.LimitReader(rand.Reader, benchSize), m); err != nil {
		b.Fatal(err)
	}
	a.Handle(Protocol, func(s p2p.Stream) { Serve(src, s) })
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst, _ := OpenChunks(b.TempDir())
		b.StartTimer()
		if err := Fetch(context.Background(), c, dst, m, []string{a.PeerID()}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStreamCopyLoopback copies 64 MiB over one bare stream between
// the same kind of nodes: the ceiling for BenchmarkFetchLoopback.
func BenchmarkStreamCopyLoopback(b *testing.B) {
	a, c := benchNodes(b)
	buf := make([]byte, ChunkSize)
	a.Handle("/bench/copy/1", func(s p2p.Stream) {
		defer s.Close()
		for sent := 0; sent < benchSize; sent += len(buf) {
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	})
	b.SetBytes(benchSize)
	for range b.N {
		s, err := c.OpenStream(context.Background(), a.PeerID(), "/bench/copy/1")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, s)
		s.Close()
		if n != benchSize {
			b.Fatalf("copied %d", n)
		}
	}
}
