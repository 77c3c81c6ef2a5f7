package media

import (
	"context"
	"crypto/rand"
	"io"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// benchNodes are two real libp2p nodes on loopback, b connected to a.
func benchNodes(b *testing.B) (a, c *p2p.Node) {
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
