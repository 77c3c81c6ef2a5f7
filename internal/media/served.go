package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/samizdat-im/samizdat/internal/store"
)

// What the sender knows of a transfer's progress: which of the file's data
// chunks it has sent (to anyone), and how many bytes of the file's chunks
// in all. For a file sent to one contact, the chunks sent are the chunks
// the recipient's devices have fetched (they are checked there before they
// count; a chunk sent twice counts once). Kept in the store, so that a
// restart of the sender does not set a transfer back to nothing.

// blobServed prefixes the store blob of a sent file's served chunks.
const blobServed = "media.s."

// servedState is one sent file's record of what it served.
type servedState struct {
	Bits  []byte `json:"bits"` // bit i (most significant first): data chunk i sent
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
	dirty bool
}

// servedRef says which sent file, and which of its data chunks (-1: an
// index chunk), a chunk hash is.
type servedRef struct {
	id string
	i  int
}

// servedLog counts what is served of the files we sent.
type servedLog struct {
	mu    sync.Mutex
	refs  map[Hash]servedRef
	files map[string]*servedState
}

func newServedLog() *servedLog {
	return &servedLog{refs: map[Hash]servedRef{}, files: map[string]*servedState{}}
}

// track starts counting what is served of file id (its data chunks hashes,
// its index chunks index), from what st says was served before.
func (l *servedLog) track(id string, hashes, index []Hash, st *servedState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.files[id] != nil {
		return
	}
	if st == nil || len(st.Bits) != (len(hashes)+7)/8 {
		st = &servedState{Bits: make([]byte, (len(hashes)+7)/8)}
	}
	l.files[id] = st
	for i, h := range hashes {
		l.refs[h] = servedRef{id, i}
	}
	for _, h := range index {
		l.refs[h] = servedRef{id, -1}
	}
}

// sent counts n bytes of chunk h served.
func (l *servedLog) sent(h Hash, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.refs[h]
	if !ok {
		return
	}
	st := l.files[r.id]
	st.Bytes += int64(n)
	st.dirty = true
	if r.i >= 0 && st.Bits[r.i/8]&(0x80>>(r.i%8)) == 0 {
		st.Bits[r.i/8] |= 0x80 >> (r.i % 8)
		st.Count++
	}
}

// get returns what was served of file id.
func (l *servedLog) get(id string) (chunks int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.files[id]; st != nil {
		return st.Count, st.Bytes
	}
	return 0, 0
}

// dirty returns copies of the states changed since the last call, as
// store blobs.
func (l *servedLog) dirty() map[string][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out map[string][]byte
	for id, st := range l.files {
		if !st.dirty {
			continue
		}
		st.dirty = false
		b, _ := json.Marshal(st)
		if out == nil {
			out = map[string][]byte{}
		}
		out[blobServed+id] = b
	}
	return out
}

// loadServed reads what was served of file id (nil if nothing yet).
func loadServed(tx *store.Tx, id string) (*servedState, error) {
	b, err := tx.Blob(blobServed + id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var st servedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("media: served chunks: %w", err)
	}
	return &st, nil
}

// trackSent starts counting what is served of the file m sent with message
// id (its chunks are here: it was sealed here). A file whose index cannot
// be read is not counted (and cannot be served either): logged, not an
// error of the send.
func (s *Service) trackSent(ctx context.Context, id string, m *Manifest) error {
	hs, err := LoadIndex(s.ch, m)
	if err != nil {
		s.log.Warn("media: sent file's index unreadable", "msg", id[:min(8, len(id))], "err", err)
		return nil
	}
	var st *servedState
	err = s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
		st, err = loadServed(tx, id)
		return err
	})
	if err != nil {
		return err
	}
	s.servedBy.track(id, hs, m.Index, st)
	return nil
}

// saveServed writes what was served since the last call to the store.
func (s *Service) saveServed(ctx context.Context) {
	blobs := s.servedBy.dirty()
	if len(blobs) == 0 {
		return
	}
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		for k, b := range blobs {
			if err := tx.PutBlob(k, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("media: saving served chunks failed", "err", err)
	}
}
