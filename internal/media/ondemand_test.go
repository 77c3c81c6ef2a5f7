package media

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// memTransport is memNet as a Service's Transport (it serves nothing).
type memTransport struct{ *memNet }

func (memTransport) Handle(string, func(p2p.Stream)) {}
func (memTransport) Unhandle(string)                 {}

// TestAutoFetchLimit: an incoming file over the automatic limit waits,
// fetching nothing; asked for (Request), it is fetched, and the request
// survives a restart of the receiver.
func TestAutoFetchLimit(t *testing.T) {
	data := make([]byte, 2*ChunkSize+7)
	rand.Read(data)
	src, m := seal(t, data)
	net := newMemNet()
	net.sources["alice"] = src
	dir, key := t.TempDir(), make([]byte, store.KeySize)
	rand.Read(key)
	ctx := context.Background()
	open := func() (*Service, *store.Store) {
		st, err := store.Open(filepath.Join(dir, "db"), key)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Dir: filepath.Join(dir, "chunks"), Store: st, Transport: memTransport{net}})
		if err != nil {
			t.Fatal(err)
		}
		s.SetAutoFetch(ChunkSize) // the file is larger
		s.Start(ctx)
		return s, st
	}
	state := func(s *Service) string {
		ts, err := s.Transfers(ctx)
		if err != nil || len(ts) != 1 {
			t.Fatalf("transfers: %v %v", ts, err)
		}
		return ts[0].State
	}
	waitState := func(s *Service, want string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); state(s) != want; {
			if time.Now().After(deadline) {
				t.Fatalf("state %s, want %s", state(s), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	s, st := open()
	if err := st.Update(ctx, func(tx *store.Tx) error { return s.AddIncoming(tx, "00aa", 1, m.Marshal(), []string{"alice"}) }); err != nil {
		t.Fatal(err)
	}
	waitState(s, StateWaiting)
	net.mu.Lock()
	served := net.served["alice"]
	net.mu.Unlock()
	if served != 0 {
		t.Fatalf("%d chunks fetched for a waiting file", served)
	}
	// Asked for while the service is stopped: only the store knows.
	s.Close()
	net.wg.Wait()
	if err := s.Request(ctx, "00aa"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// After a restart the request stands: the file is fetched.
	s, st = open()
	defer st.Close()
	defer s.Close()
	waitState(s, StateComplete)
	if err := s.Request(ctx, "00bb"); err == nil {
		t.Error("Request of a message without a file succeeded")
	}
}
