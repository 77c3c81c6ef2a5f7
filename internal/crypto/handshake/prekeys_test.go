package handshake

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
)

// prekeysV1 is a version 1 private encoding (testdata/prekeys-v1.hex: the
// responder prekeys and identity of vectors.json before version 2), as profiles made before
// rotation was scheduled hold.
func prekeysV1(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "prekeys-v1.hex"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := hex.DecodeString(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// prekeysV1Identity is the identity of prekeysV1.
func prekeysV1Identity(t testing.TB) *keys.Identity {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "prekeys-v1.hex"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.Fields(string(b))[1])
	if err != nil {
		t.Fatal(err)
	}
	id, err := keys.UnmarshalIdentity(raw)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// respond reports whether bob answers a fresh initiation made from bundle.
func respond(t *testing.T, alice, bob party, bundle *Bundle) error {
	t.Helper()
	in, _, err := Initiate(testrand.New(t.Name()+time.Now().String()), alice.id, bundle, ratchet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Respond(bob.id, bob.pk, in, ratchet.Config{})
	return err
}

// The default schedule as durations.
const (
	week  = DefaultRotateEvery * time.Second
	grace = DefaultGrace * time.Second
)

func TestRotationSchedule(t *testing.T) {
	r := testrand.New(t.Name())
	alice, bob := newParty(t, r, 0), newParty(t, r, 0)
	pol := Policy{LowWater: 1, Target: 1}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	maintain := func(at time.Time) Maintenance {
		t.Helper()
		m, err := bob.pk.Maintain(r, bob.id, at.Unix(), pol)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// The first run stamps the creation time; nothing is due.
	if m := maintain(t0); m.Rotated || !m.Changed {
		t.Fatalf("first Maintain: %+v", m)
	}
	first := bob.pk.Bundle(false)
	if m := maintain(t0.Add(week - time.Second)); m.Rotated {
		t.Fatal("rotated before a week")
	}
	if m := maintain(t0.Add(week)); !m.Rotated {
		t.Fatal("not rotated after a week")
	}
	second := bob.pk.Bundle(false)
	if second.SignedPrekeyID == first.SignedPrekeyID || bytes.Equal(second.KEMPrekey, first.KEMPrekey) {
		t.Fatal("rotation kept the signed or the last-resort KEM prekey")
	}
	if s := bob.pk.Status(); s.SignedCreated != t0.Add(week).Unix() || s.Generations != 2 {
		t.Fatalf("status after rotation: %+v", s)
	}
	// The replaced generation answers during its grace period...
	retired := t0.Add(week)
	if m := maintain(retired.Add(grace - time.Second)); m.Expired != 0 {
		t.Fatalf("expired during the grace period: %+v", m)
	}
	if err := respond(t, alice, bob, first); err != nil {
		t.Fatalf("initiation to the previous signed prekey in its grace period: %v", err)
	}
	// ...and not after: its private keys are gone.
	m := maintain(retired.Add(grace))
	if m.Expired == 0 {
		t.Fatalf("not expired after the grace period: %+v", m)
	}
	if err := respond(t, alice, bob, first); !errors.Is(err, ErrUnknownPrekey) {
		t.Fatalf("initiation to an expired signed prekey: %v, want ErrUnknownPrekey", err)
	}
	if err := respond(t, alice, bob, bob.pk.Bundle(false)); err != nil {
		t.Fatalf("initiation to the current signed prekey: %v", err)
	}
	// The state, times included, survives persistence.
	b := bob.pk.Marshal()
	p, err := UnmarshalPrekeys(b)
	if err != nil || !bytes.Equal(p.Marshal(), b) {
		t.Fatalf("round trip: %v", err)
	}
}

// TestReplayCacheBounded: a generation whose replay cache fills up is
// rotated early, and a full cache refuses rather than forgets.
func TestReplayCacheBounded(t *testing.T) {
	r := testrand.New(t.Name())
	alice, bob := newParty(t, r, 0), newParty(t, r, 0)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := bob.pk.Maintain(r, bob.id, now.Unix(), Policy{}); err != nil {
		t.Fatal(err)
	}
	old := bob.pk.Bundle(false)
	g := &bob.pk.gens[0]
	for i := 0; len(g.seen) < MaxReplayCache*3/4; i++ {
		g.seen = append(g.seen, [ReplayTagSize]byte{byte(i), byte(i >> 8), 1})
	}
	m, err := bob.pk.Maintain(r, bob.id, now.Add(time.Minute).Unix(), Policy{})
	if err != nil || !m.Rotated {
		t.Fatalf("a three-quarters full replay cache did not rotate: %+v, %v", m, err)
	}
	g = &bob.pk.gens[1]
	for i := 0; len(g.seen) < MaxReplayCache; i++ {
		g.seen = append(g.seen, [ReplayTagSize]byte{byte(i), byte(i >> 8), 2})
	}
	if err := respond(t, alice, bob, old); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("initiation to a generation with a full replay cache: %v", err)
	}
	if err := respond(t, alice, bob, bob.pk.Bundle(false)); err != nil {
		t.Fatalf("initiation to the new generation: %v", err)
	}
	b := bob.pk.Marshal()
	if p, err := UnmarshalPrekeys(b); err != nil || !bytes.Equal(p.Marshal(), b) {
		t.Fatalf("round trip with full caches: %v", err)
	}
}

func TestClaimOnce(t *testing.T) {
	r := testrand.New(t.Name())
	alice, bob := newParty(t, r, 0), newParty(t, r, 3)
	seen := map[uint32]bool{}
	var claimed []*Bundle
	for range 3 {
		b, err := bob.pk.Claim()
		if err != nil {
			t.Fatal(err)
		}
		if len(b.OneTimePrekeys) != 1 || len(b.KEMOneTimePrekeys) != 1 {
			t.Fatalf("claimed bundle with %d and %d one-time prekeys", len(b.OneTimePrekeys), len(b.KEMOneTimePrekeys))
		}
		id := b.OneTimePrekeys[0].ID
		if seen[id] {
			t.Fatalf("one-time prekey %d handed out twice", id)
		}
		seen[id] = true
		// What a requester receives parses and verifies.
		pb, err := ParseBundle(b.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		claimed = append(claimed, pb)
	}
	// Persisted and reloaded, nothing is handed out again.
	p, err := UnmarshalPrekeys(bob.pk.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	bob.pk = p
	if _, err := bob.pk.Claim(); !errors.Is(err, ErrNoOneTimePrekeys) {
		t.Fatalf("claim from an exhausted pool: %v", err)
	}
	// Replenished below the low-water mark, without forgetting the
	// handed-out ones still unused.
	m, err := bob.pk.Maintain(r, bob.id, 1e9, Policy{LowWater: 2, Target: 5})
	if err != nil || m.Added != 5 || bob.pk.Unclaimed() != 5 || bob.pk.OneTimeCount() != 8 {
		t.Fatalf("replenish: %+v, %v; unclaimed %d, held %d", m, err, bob.pk.Unclaimed(), bob.pk.OneTimeCount())
	}
	if b, err := bob.pk.Claim(); err != nil || seen[b.OneTimePrekeys[0].ID] {
		t.Fatalf("claim after replenishing: %v", err)
	}
	// A claimed pair serves one initiation; its replay names a spent one.
	roundTrip(t, r, alice, bob, claimed[1])
	if err := respond(t, alice, bob, claimed[1]); !errors.Is(err, ErrPrekeyUsed) {
		t.Fatalf("second initiation with a spent one-time prekey: %v, want ErrPrekeyUsed", err)
	}
	// A full pool makes room by dropping the oldest handed-out pairs.
	full := newParty(t, r, MaxOneTimePrekeys)
	for range MaxOneTimePrekeys - 1 {
		if _, err := full.pk.Claim(); err != nil {
			t.Fatal(err)
		}
	}
	m, err = full.pk.Maintain(r, full.id, 1e9, Policy{})
	if err != nil || full.pk.Unclaimed() != MaxOneTimePrekeys || full.pk.OneTimeCount() != MaxOneTimePrekeys {
		t.Fatalf("replenish a full pool: %+v, %v; unclaimed %d", m, err, full.pk.Unclaimed())
	}
}

// TestPrekeysV1 reads a profile's prekeys from before rotation: its
// generation is stamped by the first Maintain, not rotated at once.
func TestPrekeysV1(t *testing.T) {
	p, err := UnmarshalPrekeys(prekeysV1(t))
	if err != nil {
		t.Fatal(err)
	}
	id := p.Bundle(false).SignedPrekeyID
	r := testrand.New(t.Name())
	bobID := prekeysV1Identity(t)
	m, err := p.Maintain(r, bobID, 1e9, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Rotated || p.Bundle(false).SignedPrekeyID != id || !m.Changed {
		t.Fatalf("first Maintain of version 1 prekeys: %+v", m)
	}
}
