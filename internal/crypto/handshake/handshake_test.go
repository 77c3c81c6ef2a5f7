package handshake

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
)

type party struct {
	id *keys.Identity
	pk *Prekeys
}

func newParty(t testing.TB, rand io.Reader, oneTime int) party {
	t.Helper()
	id, err := keys.GenerateIdentity(rand)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := NewPrekeys(rand, id, oneTime)
	if err != nil {
		t.Fatal(err)
	}
	return party{id, pk}
}

// roundTrip runs a full handshake plus a first message and a reply.
func roundTrip(t *testing.T, rand io.Reader, alice, bob party, bundle *Bundle) {
	t.Helper()
	in, as, err := Initiate(rand, alice.id, bundle, ratchet.Config{})
	if err != nil {
		t.Fatalf("Initiate: %v", err)
	}
	first, err := as.Encrypt(rand, []byte("hello bob"))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseInitiation(in.Marshal())
	if err != nil {
		t.Fatalf("ParseInitiation: %v", err)
	}
	bs, err := Respond(bob.id, bob.pk, parsed, ratchet.Config{})
	if err != nil {
		t.Fatalf("Respond: %v", err)
	}
	pt, err := bs.Decrypt(rand, first)
	if err != nil || string(pt) != "hello bob" {
		t.Fatalf("first message: %q, %v", pt, err)
	}
	reply, err := bs.Encrypt(rand, []byte("hello alice"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := as.Decrypt(rand, reply); err != nil || string(pt) != "hello alice" {
		t.Fatalf("reply: %q, %v", pt, err)
	}
}

func TestHandshake(t *testing.T) {
	r := testrand.New(t.Name())
	alice, bob := newParty(t, r, 0), newParty(t, r, 3)
	for _, withOneTime := range []bool{true, false} {
		b, err := ParseBundle(bob.pk.Bundle(withOneTime).Marshal())
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, r, alice, bob, b)
	}
	if got := bob.pk.OneTimeCount(); got != 2 {
		t.Fatalf("OneTimeCount = %d, want 2", got)
	}
}

func TestOneTimePrekeyUsedOnce(t *testing.T) {
	r := testrand.New(t.Name())
	alice, bob := newParty(t, r, 0), newParty(t, r, 2)
	in, _, err := Initiate(r, alice.id, bob.pk.Bundle(true), ratchet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Respond(bob.id, bob.pk, in, ratchet.Config{}); err != nil {
		t.Fatal(err)
	}
	before := bob.pk.Marshal()
	if _, err := Respond(bob.id, bob.pk, in, ratchet.Config{}); !errors.Is(err, ErrPrekeyUsed) {
		t.Fatalf("second Respond: %v, want ErrPrekeyUsed", err)
	}
	if !bytes.Equal(before, bob.pk.Marshal()) {
		t.Fatal("failed Respond changed the prekeys")
	}
	// Only the KEM one-time prekey reused.
	in2 := *in
	in2.HasOneTimePrekey, in2.OneTimePrekeyID = true, 2
	if _, err := Respond(bob.id, bob.pk, &in2, ratchet.Config{}); !errors.Is(err, ErrPrekeyUsed) {
		t.Fatalf("reused KEM prekey: %v, want ErrPrekeyUsed", err)
	}
	for name, mod := range map[string]func(*Initiation){
		"unknown one-time":     func(i *Initiation) { i.OneTimePrekeyID = 99 },
		"unknown KEM one-time": func(i *Initiation) { i.HasOneTimePrekey = false; i.OneTimePrekeyID = 0; i.KEMPrekeyID = 99 },
		"unknown signed":       func(i *Initiation) { i.SignedPrekeyID = 99 },
		"unknown last resort": func(i *Initiation) {
			i.HasOneTimePrekey, i.OneTimePrekeyID, i.KEMOneTime, i.KEMPrekeyID = false, 0, false, 99
		},
	} {
		i := *in
		mod(&i)
		if _, err := Respond(bob.id, bob.pk, &i, ratchet.Config{}); !errors.Is(err, ErrUnknownPrekey) {
			t.Errorf("%s: %v, want ErrUnknownPrekey", name, err)
		}
	}
}

func TestRotation(t *testing.T) {
	r := testrand.New(t.Name())
	alice, bob := newParty(t, r, 0), newParty(t, r, 0)
	old := bob.pk.Bundle(false)
	if err := bob.pk.Rotate(r, bob.id); err != nil {
		t.Fatal(err)
	}
	// An initiation made from the previous bundle still works...
	roundTrip(t, r, alice, bob, old)
	roundTrip(t, r, alice, bob, bob.pk.Bundle(false))
	// ...until MaxGenerations newer ones exist (Maintain drops them
	// earlier, after their grace period: TestRotationSchedule).
	for range MaxGenerations - 1 {
		if err := bob.pk.Rotate(r, bob.id); err != nil {
			t.Fatal(err)
		}
	}
	in, _, err := Initiate(r, alice.id, old, ratchet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Respond(bob.id, bob.pk, in, ratchet.Config{}); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("initiation to a rotated-out prekey: %v", err)
	}
	// The state survives a round trip.
	b := bob.pk.Marshal()
	p, err := UnmarshalPrekeys(b)
	if err != nil || !bytes.Equal(p.Marshal(), b) {
		t.Fatalf("round trip: %v", err)
	}
	if err := bob.pk.Rotate(r, alice.id); !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("Rotate with another identity: %v", err)
	}
	if _, err := NewPrekeys(r, bob.id, MaxOneTimePrekeys+1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too many one-time prekeys: %v", err)
	}
}
