package handshake

import (
	"bytes"
	"errors"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
)

// TestBundleTampering flips every byte of a bundle. Everything but the
// one-time X25519 prekeys (unsigned, as in PQXDH) is covered by a signature.
func TestBundleTampering(t *testing.T) {
	r := testrand.New(t.Name())
	bob := newParty(t, r, 1)
	enc := bob.pk.Bundle(true).Marshal()
	opkStart := bundleFixedSize - 2 - 2 + 2 // after the one-time count
	opkEnd := opkStart + bundleOneTimeSize
	for i := range enc {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x01
		_, err := ParseBundle(bad)
		if i >= opkStart && i < opkEnd { // id and key of the unsigned one-time prekey
			if err != nil {
				t.Fatalf("byte %d (one-time prekey): %v", i, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	for n := range enc {
		if _, err := ParseBundle(enc[:n]); err == nil {
			t.Fatalf("truncated to %d: accepted", n)
		}
	}
	if _, err := ParseBundle(append(bytes.Clone(enc), 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("trailing byte: %v", err)
	}
	// A bundle edited after parsing is re-checked by Initiate.
	b, _ := ParseBundle(enc)
	b.SignedPrekey[0] ^= 1
	if _, _, err := Initiate(r, bob.id, b, ratchet.Config{}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Initiate with a forged signed prekey: %v", err)
	}
	b, _ = ParseBundle(enc)
	b.KEMOneTimePrekeys[0].Key[5] ^= 1
	if _, _, err := Initiate(r, bob.id, b, ratchet.Config{}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Initiate with a forged KEM prekey: %v", err)
	}
}

// TestInitiationTampering flips every byte of an initiation: either the
// initiation is rejected or the session it yields cannot decrypt the
// initiator's first message.
func TestInitiationTampering(t *testing.T) {
	r := testrand.New(t.Name())
	alice, bob := newParty(t, r, 0), newParty(t, r, 1)
	pk := bob.pk.Marshal()
	in, as, err := Initiate(r, alice.id, bob.pk.Bundle(true), ratchet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := as.Encrypt(r, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	enc := in.Marshal()
	step := 1
	if testing.Short() {
		step = 7
	}
	for i := 0; i < len(enc); i += step {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x01
		pin, err := ParseInitiation(bad)
		if err != nil {
			continue
		}
		p, _ := UnmarshalPrekeys(pk)
		bs, err := Respond(bob.id, p, pin, ratchet.Config{})
		if err != nil {
			continue
		}
		if pt, err := bs.Decrypt(r, first); err == nil {
			t.Fatalf("byte %d flipped: first message decrypted: %q", i, pt)
		}
	}
	p, _ := UnmarshalPrekeys(pk)
	bs, err := Respond(bob.id, p, in, ratchet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := bs.Decrypt(r, first); err != nil || string(pt) != "first" {
		t.Fatalf("genuine initiation: %q, %v", pt, err)
	}
	// Bob with someone else's prekeys.
	if _, err := Respond(alice.id, p, in, ratchet.Config{}); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("wrong identity: %v", err)
	}
}
