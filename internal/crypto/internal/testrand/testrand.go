// Package testrand provides a deterministic byte stream for known-answer tests
// of the crypto packages. It must never be used outside tests: its output is a
// public function of the seed.
//
// The stream is SHA-256 in counter mode: block i is SHA-256(seed || uint64be(i)).
package testrand

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
)

// Reader is a deterministic io.Reader. The zero value is not usable; use New.
type Reader struct {
	seed    []byte
	counter uint64
	buf     [sha256.Size]byte
	off     int
}

// New returns a Reader whose stream is determined by seed.
func New(seed string) *Reader {
	return &Reader{seed: []byte(seed), off: sha256.Size}
}

// Read fills p from the stream; it never fails.
func (r *Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.off == sha256.Size {
			h := sha256.New()
			h.Write(r.seed)
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], r.counter)
			h.Write(c[:])
			h.Sum(r.buf[:0])
			r.counter++
			r.off = 0
		}
		m := copy(p[n:], r.buf[r.off:])
		r.off += m
		n += m
	}
	return n, nil
}

// CorpusFile returns the contents of a Go fuzzing seed corpus file holding
// the single []byte argument b ("go test fuzz v1" format), for committing
// seeds under testdata/fuzz/FuzzXxx/.
func CorpusFile(b []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n")
}
