package media

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

// TestDepositBlobs: every deposit blob has the same size whatever its
// chunk (index, full, short last one), opens only with the file's key
// and for its own chunk, and its id differs from the chunk's address.
func TestDepositBlobs(t *testing.T) {
	data := make([]byte, 2*ChunkSize+100)
	rand.Read(data)
	ch, m := seal(t, data)
	hs, err := LoadIndex(ch, m)
	if err != nil {
		t.Fatal(err)
	}
	other := *m
	rand.Read(other.Key[:])
	all := append(append([]Hash{}, m.Index...), hs...)
	for i, h := range all {
		b, _ := ch.Get(h)
		blob, err := SealDeposit(m, h, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(blob) != BlobSize {
			t.Fatalf("blob %d: %d bytes, want %d", i, len(blob), BlobSize)
		}
		if bytes.Contains(blob, b[:32]) || DepositID(m, h) == h {
			t.Fatalf("blob %d shows its chunk", i)
		}
		got, err := OpenDeposit(m, h, blob)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %d does not open: %v", i, err)
		}
		if _, err := OpenDeposit(&other, h, blob); !errors.Is(err, ErrCorruptChunk) {
			t.Fatalf("blob %d opens under another key: %v", i, err)
		}
		if _, err := OpenDeposit(m, all[(i+1)%len(all)], blob); !errors.Is(err, ErrCorruptChunk) {
			t.Fatalf("blob %d opens as another chunk: %v", i, err)
		}
		blob[len(blob)/2] ^= 1
		if _, err := OpenDeposit(m, h, blob); !errors.Is(err, ErrCorruptChunk) {
			t.Fatalf("tampered blob %d opens: %v", i, err)
		}
	}
	if DepositID(m, hs[0]) == DepositID(&other, hs[0]) {
		t.Fatal("blob ids do not depend on the file key")
	}
}
