package media

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// evilServe answers the blob protocol on s from ch, badly: it claims to
// hold every chunk asked about in a have query, and answers a chunk
// request per mode — "flip" the chunk with one byte changed, "truncate"
// half of it and then breaks the stream, "oversize" a length over the
// largest chunk. asked counts the chunk requests.
func evilServe(ch *Chunks, s p2p.Stream, mode string, asked *atomic.Int64) {
	defer s.Close()
	r := bufio.NewReader(s)
	var zero Hash
	for {
		var h Hash
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		if h == zero {
			var nb [2]byte
			if _, err := io.ReadFull(r, nb[:]); err != nil {
				return
			}
			n := int(binary.BigEndian.Uint16(nb[:]))
			if _, err := io.CopyN(io.Discard, r, int64(n*HashSize)); err != nil {
				return
			}
			bits := bytes.Repeat([]byte{0xff}, 1+(n+7)/8)
			bits[0] = statusHave
			s.Write(bits)
			continue
		}
		asked.Add(1)
		b, err := ch.Get(h)
		if err != nil {
			s.Write([]byte{statusMissing})
			continue
		}
		hdr := []byte{statusOK, 0, 0, 0, 0}
		switch mode {
		case "flip":
			b[len(b)/2] ^= 1
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(b)))
			s.Write(append(hdr, b...))
		case "truncate":
			binary.BigEndian.PutUint32(hdr[1:], uint32(len(b)))
			s.Write(append(hdr, b[:len(b)/2]...))
			s.Reset()
			return
		case "oversize":
			binary.BigEndian.PutUint32(hdr[1:], MaxSealedChunk+1)
			s.Write(append(hdr, b...))
		}
	}
}

// TestBadSourceRealNodes (issue 16, bad input): a source that sends a
// chunk failing its hash, a truncated chunk, or a chunk longer than any
// chunk can be, over the real blob protocol between loopback nodes. The
// receiver keeps nothing it sent, drops it, and gets the file from an
// honest source: as one of a 1:1 file's sources, and as a group member
// that claims to hold every chunk (so the swarm would otherwise leave
// every chunk to it and never finish).
func TestBadSourceRealNodes(t *testing.T) {
	for _, mode := range []string{"flip", "truncate", "oversize"} {
		for _, group := range []bool{false, true} {
			name := mode + "/1:1"
			if group {
				name = mode + "/group"
			}
			t.Run(name, func(t *testing.T) { badSourceRun(t, mode, group) })
		}
	}
}

func badSourceRun(t *testing.T, mode string, group bool) {
	ctx := context.Background()
	nodes := loopNodes(t, 3)
	good, evil, recv := nodes[0], nodes[1], nodes[2]
	data := make([]byte, 12*ChunkSize+321)
	rand.Read(data)
	src, m := seal(t, data)
	var servedGood atomic.Int64
	good.Handle(Protocol, func(s p2p.Stream) {
		ServeWith(src, s, nil, func(Hash, int) { servedGood.Add(1) })
	})
	var asked atomic.Int64
	evil.Handle(Protocol, func(s p2p.Stream) { evilServe(src, s, mode, &asked) })

	key := make([]byte, store.KeySize)
	rand.Read(key)
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(Config{Dir: filepath.Join(t.TempDir(), "chunks"), Store: st, Transport: recv, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	svc.Start(ctx)
	const id = "00bad0"
	err = st.Update(ctx, func(tx *store.Tx) error {
		if group {
			return svc.AddIncomingGroup(tx, id, "ab12", m.Marshal(), []string{good.PeerID()}, []string{evil.PeerID()})
		}
		return svc.AddIncoming(tx, id, 1, m.Marshal(), []string{evil.PeerID(), good.PeerID()})
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.kickLoop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ts, err := svc.Transfers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 1 && ts[0].State == StateComplete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the file never completed: %+v (the bad source was asked %d times, the good one served %d)", ts, asked.Load(), servedGood.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every chunk held reads back whole (Get checks its hash), and the
	// file saved is the one sent.
	hashes, err := LoadIndex(svc.Chunks(), m)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hashes {
		if _, err := svc.Chunks().Get(h); err != nil {
			t.Fatalf("chunk %d held but bad: %v", i, err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := svc.Save(ctx, id, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}
	if asked.Load() == 0 {
		t.Fatal("the bad source was never asked: the test shows nothing")
	}
	// Dropped at its first bad answer (with what was already in flight),
	// not asked for its share: the honest source brought the rest.
	if asked.Load() > int64(len(hashes))/2 || servedGood.Load() < int64(len(hashes))/2 {
		t.Fatalf("the bad source was asked for %d chunks, the good one served %d, of %d", asked.Load(), servedGood.Load(), len(hashes))
	}
	t.Logf("%s: the bad source was asked for %d chunks, the good one served %d (%d data chunks)", mode, asked.Load(), servedGood.Load(), len(hashes))
}
