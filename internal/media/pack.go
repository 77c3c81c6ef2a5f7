package media

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// A fetched file's data chunks go into one pack file instead of a file
// each: creating a file costs more than writing 256 KiB into it (on the
// ext4 of the benchmark machine, 0.2-0.5 ms an open(O_CREAT) against
// 0.05 ms a chunk written), and was the largest cost of a fetch after
// the network. Chunk i of the file lies at i*MaxSealedChunk in the pack
// (every sealed data chunk but the last is MaxSealedChunk long). A
// second file, the pack's ".ok" list, holds one byte per chunk: 1 once
// the chunk was checked against its hash and written in full. The byte
// is written after the chunk, so a kill between the two loses the chunk
// (fetched again), never claims a chunk that is not there; a torn chunk
// after a power cut (neither is synced, like the chunk files) fails its
// hash in Get, which forgets it, and it is fetched again.
//
// Packs are found by the file's index: LoadIndex attaches the pack of a
// manifest, after which Has, Get and the server see its chunks. Index
// chunks, chunks sealed here and chunks of files whose index was not
// loaded stay one file each.

// packsDir is the subdirectory of the chunk directory holding packs.
const packsDir = "packs"

// pack is the pack of one file.
type pack struct {
	path string
	size int64 // of the plaintext: gives each chunk's length
	mu   sync.Mutex
	f    *os.File // data, opened on first use
	ok   *os.File // the ".ok" list
	have []bool
}

// slot is where a chunk lies in a pack.
type slot struct {
	p *pack
	i int
}

// chunkLen is the sealed length of data chunk i.
func (p *pack) chunkLen(i int) int {
	return int(min(ChunkSize, p.size-int64(i)*ChunkSize)) + TagSize
}

// open opens the pack's files. Called with p.mu held.
func (p *pack) open() error {
	if p.f != nil {
		return nil
	}
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	ok, err := os.OpenFile(p.path+".ok", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		f.Close()
		return err
	}
	p.f, p.ok = f, ok
	return nil
}

// close closes the pack's files (reopened when next needed).
func (p *pack) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f != nil {
		p.f.Close()
		p.ok.Close()
		p.f, p.ok = nil, nil
	}
}

// held reports whether chunk i is in the pack.
func (p *pack) held(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.have[i]
}

// mark records whether chunk i is in the pack.
func (p *pack) mark(i int, held bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.open(); err != nil {
		return err
	}
	b := []byte{0}
	if held {
		b[0] = 1
	}
	if _, err := p.ok.WriteAt(b, int64(i)); err != nil {
		return err
	}
	p.have[i] = held
	return nil
}

// write writes chunk i, b (checked by the caller), then marks it held.
func (p *pack) write(i int, b []byte) error {
	p.mu.Lock()
	err := p.open()
	f := p.f
	p.mu.Unlock()
	if err != nil {
		return err
	}
	// Chunks of one pack are written by several storers at once, at
	// their own offsets.
	if _, err := f.WriteAt(b, int64(i)*MaxSealedChunk); err != nil {
		return err
	}
	return p.mark(i, true)
}

// read reads chunk i into buf (grown if needed); ErrNoChunk if it is not
// held.
func (p *pack) read(i int, buf []byte) ([]byte, error) {
	p.mu.Lock()
	if !p.have[i] {
		p.mu.Unlock()
		return nil, ErrNoChunk
	}
	err := p.open()
	f := p.f
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	n := p.chunkLen(i)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, int64(i)*MaxSealedChunk); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: pack cut short", ErrNoChunk)
		}
		return nil, err
	}
	return buf, nil
}

// attach makes the data chunks hashes of m (its index, opened) seen
// through its pack, which is created when the first chunk is written.
func (c *Chunks) attach(m *Manifest, hashes []Hash) error {
	if len(m.Index) == 0 || len(hashes) != m.Chunks() {
		return nil
	}
	name := hex.EncodeToString(m.Index[0][:])
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.packs[name] != nil {
		return nil
	}
	p := &pack{path: filepath.Join(c.dir, packsDir, name), size: m.Size, have: make([]bool, len(hashes))}
	ok, err := os.ReadFile(p.path + ".ok")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("media: pack: %w", err)
	}
	for i := range min(len(ok), len(p.have)) {
		p.have[i] = ok[i] == 1
	}
	c.packs[name] = p
	for i, h := range hashes {
		if _, dup := c.slots[h]; !dup {
			c.slots[h] = slot{p, i}
		}
	}
	return nil
}

// slotOf returns where chunk h goes in a pack, if its file is attached.
func (c *Chunks) slotOf(h Hash) (slot, bool) {
	c.pmu.RLock()
	defer c.pmu.RUnlock()
	s, ok := c.slots[h]
	return s, ok
}

// Close closes the packs' open files; the chunk store stays usable
// (they are opened again when needed).
func (c *Chunks) Close() {
	c.pmu.RLock()
	defer c.pmu.RUnlock()
	for _, p := range c.packs {
		p.close()
	}
}

// drop forgets the pack of m (if attached) and deletes its files, with
// the loose chunk files of hashes and of m's index: the chunks of a file
// given up.
func (c *Chunks) drop(m *Manifest, hashes []Hash) {
	if len(m.Index) > 0 {
		name := hex.EncodeToString(m.Index[0][:])
		c.pmu.Lock()
		if p := c.packs[name]; p != nil {
			for h, s := range c.slots {
				if s.p == p {
					delete(c.slots, h)
				}
			}
			delete(c.packs, name)
			p.close()
		}
		c.pmu.Unlock()
		path := filepath.Join(c.dir, packsDir, name)
		os.Remove(path)
		os.Remove(path + ".ok")
	}
	for _, h := range hashes {
		os.Remove(c.path(h))
	}
	for _, h := range m.Index {
		os.Remove(c.path(h))
	}
}
