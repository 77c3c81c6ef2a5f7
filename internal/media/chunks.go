package media

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ErrCorruptChunk is returned when a chunk does not hash to its address.
var ErrCorruptChunk = errors.New("media: chunk does not match its hash")

// ErrNoChunk is returned by Chunks.Get for a chunk not held here.
var ErrNoChunk = errors.New("media: chunk not held")

// Chunks is a directory of sealed chunks: the data chunks of a fetched
// file in its pack (pack.go), the others one file per chunk named by its
// hash. A chunk file exists only once it is complete and checked (written
// to a temporary name, renamed), so what is there is verified; Seal syncs
// the chunks it wrote before it returns.
type Chunks struct {
	dir string

	pmu   sync.RWMutex
	packs map[string]*pack // by the hex hash of the file's first index chunk
	slots map[Hash]slot
}

// OpenChunks opens (creating) the chunk directory dir. Its 256
// subdirectories are made here, once, rather than by the first chunk
// written into each: a transfer's chunks then cost no mkdir.
func OpenChunks(dir string) (*Chunks, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("media: chunk directory: %w", err)
	}
	for i := range 256 {
		err := os.Mkdir(filepath.Join(dir, hex.EncodeToString([]byte{byte(i)})), 0o700)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("media: chunk directory: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, packsDir), 0o700); err != nil {
		return nil, fmt.Errorf("media: chunk directory: %w", err)
	}
	removePartial(dir)
	return &Chunks{dir: dir, packs: map[string]*pack{}, slots: map[Hash]slot{}}, nil
}

func (c *Chunks) path(h Hash) string {
	x := hex.EncodeToString(h[:])
	return filepath.Join(c.dir, x[:2], x)
}

// Has reports whether chunk h is held.
func (c *Chunks) Has(h Hash) bool {
	if s, ok := c.slotOf(h); ok && s.p.held(s.i) {
		return true
	}
	_, err := os.Stat(c.path(h))
	return err == nil
}

// Get returns chunk h, or ErrNoChunk. A chunk that no longer matches its
// hash (torn by a crash: fetched chunks are not synced one by one) is
// removed and reported missing, so that it is fetched again.
func (c *Chunks) Get(h Hash) ([]byte, error) {
	if s, ok := c.slotOf(h); ok && s.p.held(s.i) {
		b, err := s.p.read(s.i, nil)
		if err == nil && sha256.Sum256(b) == h {
			return b, nil
		}
		if err == nil || errors.Is(err, ErrNoChunk) {
			s.p.mark(s.i, false)
			return nil, fmt.Errorf("%w: %s was damaged", ErrNoChunk, h)
		}
		return nil, fmt.Errorf("media: read chunk: %w", err)
	}
	b, err := os.ReadFile(c.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoChunk, h)
	}
	if err != nil {
		return nil, fmt.Errorf("media: read chunk: %w", err)
	}
	if sha256.Sum256(b) != h {
		os.Remove(c.path(h))
		return nil, fmt.Errorf("%w: %s was damaged", ErrNoChunk, h)
	}
	return b, nil
}

// read reads chunk h into buf (grown if needed) without checking it: for
// serving, as the receiver checks every chunk anyway.
func (c *Chunks) read(h Hash, buf []byte) ([]byte, error) {
	if s, ok := c.slotOf(h); ok && s.p.held(s.i) {
		return s.p.read(s.i, buf)
	}
	if cap(buf) < MaxSealedChunk+1 {
		buf = make([]byte, MaxSealedChunk+1)
	}
	n, err := readInto(c.path(h), buf[:MaxSealedChunk+1])
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoChunk, h)
	}
	if err != nil {
		return nil, fmt.Errorf("media: read chunk: %w", err)
	}
	if n > MaxSealedChunk {
		return nil, fmt.Errorf("media: read chunk %s: longer than a chunk", h)
	}
	return buf[:n], nil
}

// Put checks that b hashes to h and keeps it. Only chunks sealed here are
// synced to disk (by Seal, nobody else has them yet); a fetched chunk
// that a crash damages is found by Get and fetched again, and syncing each
// one would halve the transfer rate.
func (c *Chunks) Put(h Hash, b []byte) error {
	if sha256.Sum256(b) != h {
		return ErrCorruptChunk
	}
	return c.put(h, b)
}

// put keeps b, which the caller checked hashes to h. A chunk already
// held is written again (the rename replaces it with the same bytes):
// cheaper than asking first, for chunks that are almost never held.
func (c *Chunks) put(h Hash, b []byte) error {
	if s, ok := c.slotOf(h); ok && len(b) == s.p.chunkLen(s.i) {
		if err := s.p.write(s.i, b); err != nil {
			return fmt.Errorf("media: write chunk: %w", err)
		}
		return nil
	}
	p := c.path(h)
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := p + ".tmp" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		// The subdirectory went away since OpenChunks.
		if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
			f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("media: write chunk: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("media: write chunk: %w", err)
	}
	return nil
}

// sync forces chunk file h to disk.
func (c *Chunks) sync(h Hash) error {
	f, err := os.Open(c.path(h))
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("media: write chunk: %w", err)
	}
	return nil
}

// syncAll syncs the chunk files hs, syncSpread at a time.
func (c *Chunks) syncAll(hs []Hash) error {
	const syncSpread = 16
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan Hash)
	)
	for range min(syncSpread, len(hs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range next {
				if err := c.sync(h); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, h := range hs {
		next <- h
	}
	close(next)
	wg.Wait()
	return first
}

// removePartial deletes the temporary files of chunk writes that a crash
// interrupted (a chunk file appears only by rename, once complete).
func removePartial(dir string) {
	subs, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, sub.Name()))
		if err != nil {
			continue
		}
		for _, f := range files {
			if strings.Contains(f.Name(), ".tmp") {
				os.Remove(filepath.Join(dir, sub.Name(), f.Name()))
			}
		}
	}
}
