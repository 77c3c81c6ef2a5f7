package mesh

import (
	"encoding/binary"
	"math/bits"

	"github.com/samizdat-im/samizdat/internal/mailbox"
)

// Set reconciliation (see the package comment and docs/MESH.md). Ids are
// SHA-256 values, uniformly spread, so their first bytes place them in
// buckets and their next bytes make good fingerprints.
const (
	// IDSize is the size of an item id (an envelope hash, or a receipt id).
	IDSize = mailbox.HashSize
	// FingerprintSize is the size of one bucket's fingerprint.
	FingerprintSize = 8
	// MinBuckets and MaxBuckets bound a summary's bucket count.
	MinBuckets = 16
	MaxBuckets = 4096
	// idsPerBucket is the target load of a bucket: a differing bucket costs
	// about this many ids in the answer.
	idsPerBucket = 4
	// MaxDiffIDs bounds the ids in one MeshDiff and MaxWantIDs those in one
	// MeshWant (both fit a frame with room to spare).
	MaxDiffIDs = 7000
	MaxWantIDs = 7000
)

// summary is the bucketed digest of an id set.
type summary struct {
	buckets int
	fps     []byte // FingerprintSize per bucket
	counts  []byte // one saturating count per bucket
}

// bucketCount picks the bucket count for a set of n ids: a power of two
// with about idsPerBucket ids each, within [MinBuckets, MaxBuckets].
func bucketCount(n int) int {
	b := MinBuckets
	if n > MinBuckets*idsPerBucket {
		b = 1 << bits.Len(uint(n/idsPerBucket-1))
	}
	return min(b, MaxBuckets)
}

func bucketOf(id mailbox.Hash, buckets int) int {
	return int(binary.BigEndian.Uint32(id[:4]) & uint32(buckets-1))
}

func summarize(ids []mailbox.Hash, buckets int) summary {
	s := summary{buckets: buckets, fps: make([]byte, buckets*FingerprintSize), counts: make([]byte, buckets)}
	for _, id := range ids {
		b := bucketOf(id, buckets)
		fp := s.fps[b*FingerprintSize : (b+1)*FingerprintSize]
		binary.BigEndian.PutUint64(fp, binary.BigEndian.Uint64(fp)^binary.BigEndian.Uint64(id[4:12]))
		if s.counts[b] < 255 {
			s.counts[b]++
		}
	}
	return s
}

// differing returns the buckets where two summaries of the same size
// differ, in order.
func differing(a, b summary) []int {
	var out []int
	for i := 0; i < a.buckets; i++ {
		if a.counts[i] != b.counts[i] || string(a.fps[i*FingerprintSize:(i+1)*FingerprintSize]) != string(b.fps[i*FingerprintSize:(i+1)*FingerprintSize]) {
			out = append(out, i)
		}
	}
	return out
}

// validBuckets reports whether n is an acceptable bucket count.
func validBuckets(n uint32) bool {
	return n >= MinBuckets && n <= MaxBuckets && n&(n-1) == 0
}

func packIDs(ids []mailbox.Hash) []byte {
	out := make([]byte, 0, len(ids)*IDSize)
	for _, id := range ids {
		out = append(out, id[:]...)
	}
	return out
}

func unpackIDs(b []byte) ([]mailbox.Hash, bool) {
	if len(b)%IDSize != 0 {
		return nil, false
	}
	out := make([]mailbox.Hash, len(b)/IDSize)
	for i := range out {
		copy(out[i][:], b[i*IDSize:])
	}
	return out, true
}
