// Package bincursor is the bounds-checked reader the crypto packages use to
// parse their fixed binary encodings: reads past the end record an error
// (the package's own "truncated" sentinel) instead of panicking, so a
// parser reads every field and checks the error once.
package bincursor

import "encoding/binary"

// Reader is a cursor over b. The first failed read sets Err; later reads
// return zero values.
type Reader struct {
	b         []byte
	Err       error
	truncated error
}

// New returns a reader over b that reports truncated when a read runs past
// the end.
func New(b []byte, truncated error) *Reader {
	return &Reader{b: b, truncated: truncated}
}

// Next returns the next n bytes (a subslice of the input), or nil.
func (r *Reader) Next(n int) []byte {
	if r.Err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.Err = r.truncated
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// U8 reads one byte.
func (r *Reader) U8() byte {
	if b := r.Next(1); b != nil {
		return b[0]
	}
	return 0
}

// U16 reads a big-endian uint16.
func (r *Reader) U16() uint16 {
	if b := r.Next(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

// U32 reads a big-endian uint32.
func (r *Reader) U32() uint32 {
	if b := r.Next(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// Rest returns what has not been read.
func (r *Reader) Rest() []byte { return r.b }
