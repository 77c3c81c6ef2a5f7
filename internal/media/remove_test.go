package media

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/store"
)

// TestRemove: a file sealed here and removed leaves none of its chunks.
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "db"), bytes.Repeat([]byte{1}, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(Config{Dir: filepath.Join(dir, "chunks"), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plain := bytes.Repeat([]byte("history "), ChunkSize/4) // two chunks
	m, err := s.PrepareReader(bytes.NewReader(plain), "history", int64(len(plain)), "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	hs, err := LoadIndex(s.Chunks(), m)
	if err != nil || len(hs) != 2 {
		t.Fatalf("index: %d chunks, %v", len(hs), err)
	}
	s.Remove(m)
	for _, h := range append(hs, m.Index...) {
		if s.Chunks().Has(h) {
			t.Errorf("chunk %s left after Remove", h)
		}
	}
}
