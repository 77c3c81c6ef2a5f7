package senderkey

import "testing"

// BenchmarkSenderKey measures one Encrypt (ChaCha20-Poly1305 + Ed25519 signature) and
// one Decrypt (signature verification + ChaCha20-Poly1305) of a 100-byte message.
func BenchmarkSenderKey(b *testing.B) {
	s, r := newSenderReceiver(b, "bench", Config{})
	pt := make([]byte, 100)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := s.Encrypt(pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Decrypt(m); err != nil {
			b.Fatal(err)
		}
	}
}
