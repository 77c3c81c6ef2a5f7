package ratchet

import (
	"crypto/rand"
	"testing"
)

// benchRatchet measures one Encrypt plus one Decrypt of a size-byte message
// in the steady state (same sending chain, no DH ratchet step), with the
// system random source.
func benchRatchet(b *testing.B, size int) {
	a, bob := newPair(b, testRand("bench"), Config{})
	pt := make([]byte, size)
	m, err := a.Encrypt(rand.Reader, pt)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bob.Decrypt(rand.Reader, m); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		m, err := a.Encrypt(rand.Reader, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.Decrypt(rand.Reader, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRatchet100B(b *testing.B)  { benchRatchet(b, 100) }
func BenchmarkRatchet64KiB(b *testing.B) { benchRatchet(b, 64<<10) }

// BenchmarkRatchetPingPong alternates directions, so every message carries
// a DH ratchet step (one key generation and two X25519 operations).
func BenchmarkRatchetPingPong(b *testing.B) {
	a, bob := newPair(b, testRand("bench"), Config{})
	pt := make([]byte, 100)
	b.ReportAllocs()
	for b.Loop() {
		m, err := a.Encrypt(rand.Reader, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.Decrypt(rand.Reader, m); err != nil {
			b.Fatal(err)
		}
		a, bob = bob, a
	}
}
