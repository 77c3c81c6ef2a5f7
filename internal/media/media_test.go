package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// pipeStream is one end of an in-memory stream.
type pipeStream struct {
	r    *io.PipeReader
	w    *io.PipeWriter
	peer string
}

func (s *pipeStream) Read(b []byte) (int, error)  { return s.r.Read(b) }
func (s *pipeStream) Write(b []byte) (int, error) { return s.w.Write(b) }
func (s *pipeStream) CloseWrite() error           { return s.w.Close() }
func (s *pipeStream) Close() error                { s.w.Close(); return s.r.Close() }
func (s *pipeStream) Reset() error {
	s.w.CloseWithError(errors.New("reset"))
	return s.r.CloseWithError(errors.New("reset"))
}
func (s *pipeStream) SetDeadline(time.Time) error { return nil }
func (s *pipeStream) RemotePeer() string          { return s.peer }

var _ p2p.Stream = (*pipeStream)(nil)

// memNet connects a fetcher to in-memory sources, each serving its own
// chunk store (possibly through a tampering filter).
type memNet struct {
	mu      sync.Mutex
	sources map[string]*Chunks
	tamper  map[string]bool  // flips a byte of every chunk served
	served  map[string]int   // chunks sent, by source
	bytes   map[string]int64 // bytes of chunks sent, by source
	// gate, if set, gates what a source sends (ServeWith).
	gate map[string]func(h Hash, peer string) bool
	wg   sync.WaitGroup
}

func newMemNet() *memNet {
	return &memNet{sources: map[string]*Chunks{}, tamper: map[string]bool{}, served: map[string]int{}, bytes: map[string]int64{}}
}

func (n *memNet) OpenStream(ctx context.Context, peer, proto string) (p2p.Stream, error) {
	return n.open("client", peer, proto)
}

// as is the network seen by fetcher id (the id its sources see).
func (n *memNet) as(id string) Opener { return memOpener{n, id} }

type memOpener struct {
	n  *memNet
	id string
}

func (o memOpener) OpenStream(ctx context.Context, peer, proto string) (p2p.Stream, error) {
	return o.n.open(o.id, peer, proto)
}

func (n *memNet) open(who, peer, proto string) (p2p.Stream, error) {
	n.mu.Lock()
	ch, ok := n.sources[peer]
	bad := n.tamper[peer]
	gate := n.gate[peer]
	n.mu.Unlock()
	if !ok || proto != Protocol {
		return nil, fmt.Errorf("peer %s unreachable", peer)
	}
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	client := &pipeStream{r: cr, w: cw, peer: peer}
	server := &pipeStream{r: sr, w: sw, peer: who}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ServeWith(ch, &countingStream{pipeStream: server, tamper: bad}, gate, func(_ Hash, b int) {
			n.mu.Lock()
			n.served[peer]++
			n.bytes[peer] += int64(b)
			n.mu.Unlock()
		})
	}()
	return client, nil
}

// countingStream is a source's end of a stream, tampering with what it
// writes if asked to.
type countingStream struct {
	*pipeStream
	tamper bool // flip a byte of every chunk sent
}

func (c *countingStream) Write(b []byte) (int, error) {
	if len(b) > 5 && c.tamper {
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 1
	}
	return c.pipeStream.Write(b)
}

func randomFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func seal(t *testing.T, data []byte) (*Chunks, *Manifest) {
	t.Helper()
	ch, err := OpenChunks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Name: "data.bin", MIME: "application/octet-stream", Size: int64(len(data))}
	rand.Read(m.Key[:])
	if err := Seal(ch, bytes.NewReader(data), m); err != nil {
		t.Fatal(err)
	}
	return ch, m
}

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 12345} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := make([]byte, size)
			rand.Read(data)
			src, m := seal(t, data)
			m2, err := ParseManifest(m.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			net := newMemNet()
			net.sources["alice"] = src
			dst, _ := OpenChunks(t.TempDir())
			var last int
			if err := Fetch(context.Background(), net, dst, m2, []string{"alice"}, func(d, total int) { last = d }); err != nil {
				t.Fatal(err)
			}
			net.wg.Wait()
			if last != m2.Chunks() {
				t.Errorf("progress ended at %d of %d", last, m2.Chunks())
			}
			out := filepath.Join(t.TempDir(), "out")
			if err := Save(dst, m2, out); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, data) {
				t.Fatal("saved file differs")
			}
			if err := Save(dst, m2, out); !errors.Is(err, ErrExists) {
				t.Fatalf("second save: %v, want ErrExists", err)
			}
		})
	}
}

func TestTamperedChunkRejected(t *testing.T) {
	data := make([]byte, 2*ChunkSize+7)
	rand.Read(data)
	src, m := seal(t, data)
	net := newMemNet()
	net.sources["evil"] = src
	net.tamper["evil"] = true
	dst, _ := OpenChunks(t.TempDir())
	err := Fetch(context.Background(), net, dst, m, []string{"evil"}, nil)
	if !errors.Is(err, ErrNoSource) || !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("fetch from a tampering source: %v", err)
	}
	net.wg.Wait()
	if err := Save(dst, m, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("save after a failed fetch: %v, want ErrIncomplete", err)
	}
	// An honest source next to the evil one: the file arrives.
	net.sources["good"] = src
	if err := Fetch(context.Background(), net, dst, m, []string{"evil", "good"}, nil); err != nil {
		t.Fatal(err)
	}
	net.wg.Wait()
	out := filepath.Join(t.TempDir(), "out")
	if err := Save(dst, m, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}
}

func TestDamagedChunkRefetched(t *testing.T) {
	data := make([]byte, 3*ChunkSize)
	rand.Read(data)
	src, m := seal(t, data)
	net := newMemNet()
	net.sources["alice"] = src
	dst, _ := OpenChunks(t.TempDir())
	if err := Fetch(context.Background(), net, dst, m, []string{"alice"}, nil); err != nil {
		t.Fatal(err)
	}
	net.wg.Wait()
	hashes, _ := LoadIndex(dst, m)
	// A crash tore chunk 1 (fetched chunks are not synced one by one).
	tearChunk(t, dst, hashes[1])
	out := filepath.Join(t.TempDir(), "out")
	if err := Save(dst, m, out); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("save with a torn chunk: %v, want ErrIncomplete", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed save left the file")
	}
	if err := Fetch(context.Background(), net, dst, m, []string{"alice"}, nil); err != nil {
		t.Fatal(err)
	}
	net.wg.Wait()
	if err := Save(dst, m, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}
}

// TestEmptyChunkServed: a source whose chunk file was cut to nothing
// answers with an empty chunk (its header and the chunk go out in one
// write); the fetcher finds it corrupt and the fetch fails cleanly.
func TestEmptyChunkServed(t *testing.T) {
	data := make([]byte, 2*ChunkSize)
	rand.Read(data)
	src, m := seal(t, data)
	hashes, err := LoadIndex(src, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src.path(hashes[1]), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	net := newMemNet()
	net.sources["alice"] = src
	dst, _ := OpenChunks(t.TempDir())
	err = Fetch(context.Background(), net, dst, m, []string{"alice"}, nil)
	net.wg.Wait()
	if !errors.Is(err, ErrNoSource) || !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("fetch of an empty chunk: %v, want ErrNoSource and ErrCorruptChunk", err)
	}
}

// tearChunk damages chunk h where ch keeps it (its pack, or its file).
func tearChunk(t *testing.T, ch *Chunks, h Hash) {
	t.Helper()
	s, ok := ch.slotOf(h)
	if !ok {
		os.WriteFile(ch.path(h), []byte("torn"), 0o600)
		return
	}
	f, err := os.OpenFile(s.p.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("torn"), int64(s.i)*MaxSealedChunk+100); err != nil {
		t.Fatal(err)
	}
}

// TestResumeAfterRestart: chunks fetched before the process went away
// are found again by a new chunk store on the same directory (the pack's
// list of held chunks), and only the others are fetched.
func TestResumeAfterRestart(t *testing.T) {
	data := make([]byte, 9*ChunkSize+77)
	rand.Read(data)
	src, m := seal(t, data)
	net := newMemNet()
	net.sources["alice"] = src
	dir := t.TempDir()
	dst, _ := OpenChunks(dir)
	ctx, cancel := context.WithCancel(context.Background())
	Fetch(ctx, net, dst, m, []string{"alice"}, func(done, total int) {
		if done == 4 {
			cancel()
		}
	})
	net.wg.Wait()
	_, before, err := Missing(dst, m)
	if err != nil || len(before) == 0 || len(before) == m.Chunks() {
		t.Fatalf("%d of %d chunks missing after the interruption (%v)", len(before), m.Chunks(), err)
	}
	hashes, _ := LoadIndex(dst, m)
	s, ok := dst.slotOf(hashes[0])
	if !ok {
		t.Fatal("fetched data chunks are not in a pack")
	}
	dst.Close()
	// A kill between a chunk and its mark: that chunk is not held after
	// the restart, and is fetched again.
	marks, err := os.ReadFile(s.p.path + ".ok")
	if err != nil {
		t.Fatal(err)
	}
	for i := len(marks) - 1; i >= 0; i-- {
		if marks[i] == 1 {
			marks[i] = 0
			break
		}
	}
	os.WriteFile(s.p.path+".ok", marks, 0o600)
	again, _ := OpenChunks(dir)
	_, missing, err := Missing(again, m)
	if err != nil || len(missing) != len(before)+1 {
		t.Fatalf("after a restart %d chunks missing (%v), want %d", len(missing), err, len(before)+1)
	}
	net.served = map[string]int{}
	if err := Fetch(context.Background(), net, again, m, []string{"alice"}, nil); err != nil {
		t.Fatal(err)
	}
	net.wg.Wait()
	if net.served["alice"] != len(missing) {
		t.Errorf("resume fetched %d chunks, %d were missing", net.served["alice"], len(missing))
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Save(again, m, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}
}

func TestChunkPutChecksHash(t *testing.T) {
	ch, _ := OpenChunks(t.TempDir())
	if err := ch.Put(Hash{1}, []byte("x")); !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("Put with a wrong hash: %v", err)
	}
	if ch.Has(Hash{1}) {
		t.Fatal("a corrupt chunk was kept")
	}
}

func TestResumeAfterPartial(t *testing.T) {
	data := make([]byte, 6*ChunkSize)
	rand.Read(data)
	src, m := seal(t, data)
	net := newMemNet()
	net.sources["alice"] = src
	dst, _ := OpenChunks(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	err := Fetch(ctx, net, dst, m, []string{"alice"}, func(done, total int) {
		if done == 3 {
			cancel() // the receiver goes away mid-transfer
		}
	})
	if err == nil {
		t.Fatal("fetch survived its cancellation")
	}
	net.wg.Wait()
	_, missing, err := Missing(dst, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) == 0 || len(missing) == m.Chunks() {
		t.Fatalf("%d of %d chunks missing after the interruption", len(missing), m.Chunks())
	}
	net.served = map[string]int{}
	if err := Fetch(context.Background(), net, dst, m, []string{"alice"}, nil); err != nil {
		t.Fatal(err)
	}
	net.wg.Wait()
	if net.served["alice"] != len(missing) {
		t.Errorf("resume fetched %d chunks, %d were missing", net.served["alice"], len(missing))
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Save(dst, m, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}
}

func TestSourceOffline(t *testing.T) {
	_, m := seal(t, []byte("hello"))
	dst, _ := OpenChunks(t.TempDir())
	err := Fetch(context.Background(), newMemNet(), dst, m, []string{"gone"}, nil)
	if !errors.Is(err, ErrNoSource) {
		t.Fatalf("fetch from an offline source: %v", err)
	}
}

func TestManifestRejects(t *testing.T) {
	_, m := seal(t, []byte("hello"))
	for name, mod := range map[string]func(*Manifest){
		"dir name":   func(m *Manifest) { m.Name = "../etc/passwd" },
		"empty name": func(m *Manifest) { m.Name = "" },
		"short idx":  func(m *Manifest) { m.Index = nil },
		"size":       func(m *Manifest) { m.Size = 10 * ChunkSize * hashesPerIndexChunk },
	} {
		c := *m
		mod(&c)
		if _, err := ParseManifest(c.Marshal()); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: %v, want ErrBadManifest", name, err)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	m := &Manifest{Name: "a.jpg", MIME: "image/jpeg", Size: 3*ChunkSize + 1, Index: []Hash{{1}}, Thumbnail: []byte{1, 2}}
	f.Add(m.Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		again, err := ParseManifest(m.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !bytes.Equal(again.Marshal(), m.Marshal()) {
			t.Fatal("marshal is not stable")
		}
	})
}

// TestReceiverServes: once it holds the file, a receiver serves it to a
// third party as the sender did (any holder is a source).
func TestReceiverServes(t *testing.T) {
	data := make([]byte, 2*ChunkSize+3)
	rand.Read(data)
	src, m := seal(t, data)
	net := newMemNet()
	net.sources["alice"] = src
	bob, _ := OpenChunks(t.TempDir())
	if err := Fetch(context.Background(), net, bob, m, []string{"alice"}, nil); err != nil {
		t.Fatal(err)
	}
	delete(net.sources, "alice") // the sender goes offline
	net.sources["bob"] = bob
	carol, _ := OpenChunks(t.TempDir())
	if err := Fetch(context.Background(), net, carol, m, []string{"alice", "bob"}, nil); err != nil {
		t.Fatal(err)
	}
	net.wg.Wait()
	out := filepath.Join(t.TempDir(), "out")
	if err := Save(carol, m, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("carol's copy differs")
	}
}
