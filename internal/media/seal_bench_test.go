package media

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// BenchmarkSeal seals a 32 MiB file into a fresh chunk store: what the
// sender's node does before the message goes (its "upload" to itself).
func BenchmarkSeal(b *testing.B) {
	const size = 32 << 20
	data := make([]byte, size)
	rand.Read(data)
	b.SetBytes(size)
	for range b.N {
		b.StopTimer()
		ch, _ := OpenChunks(b.TempDir())
		m := &Manifest{Name: "x", Size: size}
		rand.Read(m.Key[:])
		b.StartTimer()
		if err := Seal(ch, bytes.NewReader(data), m); err != nil {
			b.Fatal(err)
		}
	}
}
