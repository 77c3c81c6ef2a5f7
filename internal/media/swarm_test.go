package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"testing"
	"time"
)

// TestSwarmSenderUploadsOnce: a file sent to a group of members fetching
// at once from its sender and from each other. The sender serves each
// chunk about once (its budget), the members trade the rest, and every
// member ends with the whole file.
func TestSwarmSenderUploadsOnce(t *testing.T) {
	members, chunks := 12, 24
	if testing.Short() {
		members = 6
	}
	data := make([]byte, chunks*ChunkSize-100)
	rand.Read(data)
	src, m := seal(t, data)
	hashes, err := LoadIndex(src, m)
	if err != nil {
		t.Fatal(err)
	}
	budget := newSeedBudget()
	budget.add(hashes)
	net := newMemNet()
	net.sources["sender"] = src
	net.gate = map[string]func(Hash, string) bool{"sender": budget.allow}
	ids := make([]string, members)
	dsts := make([]*Chunks, members)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%02d", i)
		dsts[i], _ = OpenChunks(t.TempDir())
		net.sources[ids[i]] = dsts[i]
	}
	var wg sync.WaitGroup
	errs := make([]error, members)
	for i := range ids {
		var peers []string
		for k, id := range ids {
			if k != i {
				peers = append(peers, id)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = FetchSwarm(context.Background(), net.as(ids[i]), dsts[i], m, []string{"sender"}, peers, nil)
		}()
	}
	wg.Wait()
	net.wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", ids[i], err)
		}
		if _, missing, err := Missing(dsts[i], m); err != nil || len(missing) > 0 {
			t.Fatalf("%s: %d missing, %v", ids[i], len(missing), err)
		}
	}
	var total int64
	for _, id := range ids {
		total += net.bytes[id]
	}
	t.Logf("sender sent %d chunks (%d bytes, %.2f× the file); members sent %d bytes", net.served["sender"], net.bytes["sender"],
		float64(net.bytes["sender"])/float64(len(data)), total)
	if net.bytes["sender"] > 2*int64(len(data)) {
		t.Fatalf("the sender uploaded %d bytes for a file of %d to %d members", net.bytes["sender"], len(data), members)
	}
}

// TestPartialWritesRemoved: the temporary file of a chunk write cut by a
// crash is removed when the chunk directory is opened again; complete
// chunks stay.
func TestPartialWritesRemoved(t *testing.T) {
	data := make([]byte, 2*ChunkSize)
	rand.Read(data)
	dir := t.TempDir()
	ch, err := OpenChunks(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Name: "x", Size: int64(len(data))}
	rand.Read(m.Key[:])
	if err := Seal(ch, bytes.NewReader(data), m); err != nil {
		t.Fatal(err)
	}
	torn := ch.path(m.Index[0]) + ".tmp0123456789abcdef"
	if err := os.WriteFile(torn, data[:100], 0o600); err != nil {
		t.Fatal(err)
	}
	if ch, err = OpenChunks(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(torn); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the torn write is still there: %v", err)
	}
	if _, missing, err := Missing(ch, m); err != nil || len(missing) != 0 {
		t.Fatalf("complete chunks lost: %d missing, %v", len(missing), err)
	}
}

// TestSeedBudget: one member gets each chunk; the same member again; a
// member refused for seedRefill gets it too, one refused for less not.
func TestSeedBudget(t *testing.T) {
	now := time.Unix(1e9, 0)
	b := newSeedBudget()
	b.now = func() time.Time { return now }
	var h, other Hash
	h[0], other[0] = 1, 2
	b.add([]Hash{h})
	steps := []struct {
		peer  string
		after time.Duration
		want  bool
	}{
		{"x", 0, true}, {"y", 0, false}, {"x", 0, true}, {"z", time.Minute, false},
		{"y", seedRefill - time.Minute, true}, {"y", 0, true}, {"z", 0, false}, {"z", time.Minute, true},
	}
	for i, s := range steps {
		now = now.Add(s.after)
		if got := b.allow(h, s.peer); got != s.want {
			t.Fatalf("step %d: %s allowed %v, want %v", i, s.peer, got, s.want)
		}
	}
	if !b.allow(other, "y") {
		t.Fatal("a chunk of no swarm file was refused")
	}
}
