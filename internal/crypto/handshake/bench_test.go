package handshake

import (
	"crypto/rand"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
)

// BenchmarkHandshake measures Initiate plus Respond with a one-time X25519
// prekey and a one-time ML-KEM-768 prekey (DH1-DH4 and ML-KEM, the full
// PQXDH): 11 X25519 operations, one ML-KEM-768 encapsulation and one
// decapsulation. The bundle is one that ParseBundle has already verified
// (see BenchmarkParseBundle for that cost); restocking Bob's one-time
// prekeys is not timed.
func BenchmarkHandshake(b *testing.B) {
	r := testrand.New("bench")
	alice, bob := newParty(b, r, 0), newParty(b, r, 0)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if bob.pk.OneTimeCount() == 0 {
			if err := bob.pk.AddOneTime(r, bob.id, MaxOneTimePrekeys); err != nil {
				b.Fatal(err)
			}
		}
		bundle := bob.pk.Bundle(false)
		bundle.OneTimePrekeys = []OneTimePrekey{bob.pk.publicOneTime(0)}
		bundle.KEMOneTimePrekeys = []KEMOneTimePrekey{bob.pk.publicKEMOneTime(0)}
		bundle.verified = bundle.snapshot() // as ParseBundle leaves it
		b.StartTimer()
		in, _, err := Initiate(rand.Reader, alice.id, bundle, ratchet.Config{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Respond(bob.id, bob.pk, in, ratchet.Config{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshakeLastResort is the same without one-time prekeys (no
// DH4; the last-resort ML-KEM-768 prekey).
func BenchmarkHandshakeLastResort(b *testing.B) {
	r := testrand.New("bench")
	alice, bob := newParty(b, r, 0), newParty(b, r, 0)
	bundle := bob.pk.Bundle(false)
	b.ReportAllocs()
	for b.Loop() {
		in, _, err := Initiate(rand.Reader, alice.id, bundle, ratchet.Config{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Respond(bob.id, bob.pk, in, ratchet.Config{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBundle measures parsing and verifying a bundle with one
// one-time prekey of each kind (four Ed25519 verifications).
func BenchmarkParseBundle(b *testing.B) {
	bob := newParty(b, testrand.New("bench"), 1)
	enc := bob.pk.Bundle(true).Marshal()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBundle(enc); err != nil {
			b.Fatal(err)
		}
	}
}
