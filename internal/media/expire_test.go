package media

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestPartialTransfersExpire: an incoming file still incomplete
// PartialMaxAge after it arrived (its sender gone) is given up when the
// service starts: its chunks are deleted and it says expired; a complete
// file of the same age stays; asking for the expired one again starts
// over.
func TestPartialTransfersExpire(t *testing.T) {
	data := make([]byte, 3*ChunkSize+5)
	rand.Read(data)
	src, m := seal(t, data)
	done := make([]byte, ChunkSize)
	rand.Read(done)
	src2, m2 := seal(t, done)
	net := newMemNet() // the senders are unreachable: no sources
	dir, key := t.TempDir(), make([]byte, store.KeySize)
	rand.Read(key)
	ctx := context.Background()
	clk := &testClock{t: time.Unix(1_900_000_000, 0)}
	open := func() (*Service, *store.Store) {
		st, err := store.Open(filepath.Join(dir, "db"), key)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Dir: filepath.Join(dir, "chunks"), Store: st, Transport: memTransport{net},
			RetryInterval: time.Hour, Expiry: ExpirySettings{PartialMaxAge: 24 * time.Hour, CleanInterval: time.Hour, Now: clk.Now}})
		if err != nil {
			t.Fatal(err)
		}
		s.Start(ctx)
		return s, st
	}
	stateOf := func(s *Service, id string) Transfer {
		ts, err := s.Transfers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range ts {
			if tr.MessageID == id {
				return tr
			}
		}
		t.Fatalf("no transfer %s", id)
		return Transfer{}
	}
	s, st := open()
	err := st.Update(ctx, func(tx *store.Tx) error {
		if err := s.AddIncoming(tx, "00aa00aa00aa00aa", 1, m.Marshal(), []string{"gone"}); err != nil {
			return err
		}
		return s.AddIncoming(tx, "00bb00bb00bb00bb", 1, m2.Marshal(), []string{"gone"})
	})
	if err != nil {
		t.Fatal(err)
	}
	// What arrived before the sender vanished: the index and one chunk
	// of the first file, all of the second.
	hs, err := LoadIndex(src, m)
	if err != nil {
		t.Fatal(err)
	}
	partial := append(append([]Hash{}, m.Index...), hs[0])
	for _, h := range partial {
		b, _ := src.Get(h)
		if err := s.Chunks().Put(h, b); err != nil {
			t.Fatal(err)
		}
	}
	hs2, _ := LoadIndex(src2, m2)
	for _, h := range append(append([]Hash{}, m2.Index...), hs2...) {
		b, _ := src2.Get(h)
		s.Chunks().Put(h, b)
	}
	clk.Add(23 * time.Hour)
	if n, err := s.ExpirePartial(ctx); err != nil || n != 0 {
		t.Fatalf("ExpirePartial before the age: %d %v", n, err)
	}
	s.Close()
	net.wg.Wait()
	st.Close()

	clk.Add(2 * time.Hour) // the node was off; it starts after the age
	s, st = open()
	defer st.Close()
	defer s.Close()
	for deadline := time.Now().Add(10 * time.Second); stateOf(s, "00aa00aa00aa00aa").State != StateExpired; {
		if time.Now().After(deadline) {
			t.Fatalf("not expired at start: %+v", stateOf(s, "00aa00aa00aa00aa"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, h := range partial {
		if s.Chunks().Has(h) {
			t.Fatalf("chunk %s of the expired transfer is still held (index %v)", h, m.Index)
		}
	}
	if tr := stateOf(s, "00bb00bb00bb00bb"); tr.State != StateComplete {
		t.Fatalf("the complete file: %+v", tr)
	}
	if n, err := s.ExpirePartial(ctx); err != nil || n != 0 {
		t.Fatalf("ExpirePartial again: %d %v", n, err)
	}
	// Asked for again: no longer expired, with a new clock.
	if err := s.Request(ctx, "00aa00aa00aa00aa"); err != nil {
		t.Fatal(err)
	}
	if tr := stateOf(s, "00aa00aa00aa00aa"); tr.State == StateExpired {
		t.Fatalf("after Request: %+v", tr)
	}
	clk.Add(time.Hour)
	if n, err := s.ExpirePartial(ctx); err != nil || n != 0 {
		t.Fatalf("ExpirePartial after Request: %d %v", n, err)
	}
}
