package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// TestSenderSeesFetch: the sender's transfer record shows the chunks the
// recipient fetched (each once, whatever was sent twice) and the bytes
// sent, on real nodes over loopback; the count survives a restart of the
// sender, and a second fetch of the same file does not count its chunks
// again.
func TestSenderSeesFetch(t *testing.T) {
	a, b := benchNodes(t)
	ctx := context.Background()
	open := func(dir string, tr Transport) (*Service, *store.Store) {
		t.Helper()
		key := make([]byte, store.KeySize)
		for i := range key {
			key[i] = byte(len(dir) + i) // the same key for a reopened store
		}
		st, err := store.Open(filepath.Join(dir, "db"), key)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Dir: filepath.Join(dir, "chunks"), Store: st, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		s.Start(ctx)
		return s, st
	}
	adir, bdir := t.TempDir(), t.TempDir()
	alice, ast := open(adir, a)
	bob, bst := open(bdir, b)
	defer func() { bob.Close(); bst.Close() }()

	data := make([]byte, 5*ChunkSize+3)
	rand.Read(data)
	m, err := alice.PrepareReader(bytes.NewReader(data), "x.bin", int64(len(data)), "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.AddOutgoing(ctx, "00aa", 1, m); err != nil {
		t.Fatal(err)
	}
	sent := func(s *Service) Transfer {
		t.Helper()
		ts, err := s.Transfers(ctx)
		if err != nil || len(ts) != 1 || ts[0].Incoming {
			t.Fatalf("transfers: %+v %v", ts, err)
		}
		return ts[0]
	}
	if tr := sent(alice); tr.ChunksServed != 0 || tr.BytesServed != 0 {
		t.Fatalf("served before anyone asked: %+v", tr)
	}
	if err := bst.Update(ctx, func(tx *store.Tx) error {
		return bob.AddIncoming(tx, "00aa", 1, m.Marshal(), []string{a.PeerID()})
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob completes", func() bool {
		ts, _ := bob.Transfers(ctx)
		return len(ts) == 1 && ts[0].State == StateComplete
	})
	// Bob counts a chunk once it is stored, alice once it is written to
	// the stream: alice's count is already complete.
	tr := sent(alice)
	wire := int64(len(data)) + int64(m.Chunks()+len(m.Index))*TagSize // the sealed data chunks and the index
	if tr.ChunksServed != tr.Total || tr.Total != 6 || tr.BytesServed < wire {
		t.Fatalf("sender sees %d of %d chunks, %d bytes served (%d on the wire)", tr.ChunksServed, tr.Total, tr.BytesServed, wire)
	}
	bytesBefore := tr.BytesServed

	// A restart of the sender keeps the count.
	alice.Close()
	ast.Close()
	alice, ast = open(adir, a)
	defer func() { alice.Close(); ast.Close() }()
	if tr := sent(alice); tr.ChunksServed != tr.Total || tr.BytesServed != bytesBefore {
		t.Fatalf("after a restart: %d chunks, %d bytes served; want %d, %d", tr.ChunksServed, tr.BytesServed, tr.Total, bytesBefore)
	}

	// Another fetch of the file (another device of bob's): more bytes,
	// no more chunks than the file has.
	other, _ := OpenChunks(t.TempDir())
	if err := Fetch(ctx, b, other, m, []string{a.PeerID()}, nil); err != nil {
		t.Fatal(err)
	}
	if tr := sent(alice); tr.ChunksServed != tr.Total || tr.BytesServed < 2*wire {
		t.Fatalf("after a second fetch: %d of %d chunks, %d bytes served", tr.ChunksServed, tr.Total, tr.BytesServed)
	}
}

// waitFor polls cond until it holds (10 s at most).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
	}
}
