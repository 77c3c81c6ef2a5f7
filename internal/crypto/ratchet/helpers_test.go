package ratchet

import (
	"crypto/ecdh"
	"io"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
)

// newPair builds an initiator/responder pair from deterministic secrets, the
// way the handshake would.
func newPair(t testing.TB, rand io.Reader, cfg Config) (alice, bob *Session) {
	t.Helper()
	var sk, hka, nhkb, bobPriv [KeySize]byte
	for _, k := range []*[KeySize]byte{&sk, &hka, &nhkb, &bobPriv} {
		if _, err := io.ReadFull(rand, k[:]); err != nil {
			t.Fatal(err)
		}
	}
	priv, err := ecdh.X25519().NewPrivateKey(bobPriv[:])
	if err != nil {
		t.Fatal(err)
	}
	var bobPub [KeySize]byte
	copy(bobPub[:], priv.PublicKey().Bytes())
	ad := []byte("alice identity || bob identity")
	alice, err = NewInitiator(rand, sk, hka, nhkb, bobPub, ad, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bob, err = NewResponder(sk, hka, nhkb, priv, ad, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func testRand(name string) *testrand.Reader { return testrand.New("ratchet test: " + name) }

func mustEncrypt(t testing.TB, s *Session, rand io.Reader, pt string) []byte {
	t.Helper()
	m, err := s.Encrypt(rand, []byte(pt))
	if err != nil {
		t.Fatalf("Encrypt(%q): %v", pt, err)
	}
	return m
}

func mustDecrypt(t testing.TB, s *Session, rand io.Reader, m []byte, want string) {
	t.Helper()
	pt, err := s.Decrypt(rand, m)
	if err != nil {
		t.Fatalf("Decrypt (want %q): %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("Decrypt = %q, want %q", pt, want)
	}
}
