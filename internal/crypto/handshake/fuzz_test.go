package handshake

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
)

type fuzzFixture struct {
	alice, bob  party
	bundles     [][]byte
	initiations [][]byte
	prekeys     [][]byte
}

func newFuzzFixture(t testing.TB) fuzzFixture {
	r := testrand.New("handshake fuzz fixture")
	fx := fuzzFixture{alice: newParty(t, r, 0), bob: newParty(t, r, 2)}
	fx.prekeys = append(fx.prekeys, fx.bob.pk.Marshal())
	for _, oneTime := range []bool{true, false} {
		b := fx.bob.pk.Bundle(oneTime)
		fx.bundles = append(fx.bundles, b.Marshal())
		in, _, err := Initiate(r, fx.alice.id, b, ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		fx.initiations = append(fx.initiations, in.Marshal())
	}
	if err := fx.bob.pk.Rotate(r, fx.bob.id); err != nil {
		t.Fatal(err)
	}
	fx.prekeys = append(fx.prekeys, fx.bob.pk.Marshal())
	empty, err := NewPrekeys(r, fx.bob.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	fx.prekeys = append(fx.prekeys, empty.Marshal())
	fx.bundles = append(fx.bundles, empty.Bundle(true).Marshal())
	fx.prekeys = append(fx.prekeys, prekeysV1(t))
	return fx
}

func FuzzParseBundle(f *testing.F) {
	for _, b := range newFuzzFixture(f).bundles {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := ParseBundle(in)
		if err != nil {
			return
		}
		if got := b.Marshal(); !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
	})
}

func FuzzParseInitiation(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, b := range fx.initiations {
		f.Add(b)
	}
	pk := fx.bob.pk.Marshal()
	f.Fuzz(func(t *testing.T, in []byte) {
		i, err := ParseInitiation(in)
		if err != nil {
			return
		}
		if got := i.Marshal(); !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
		// Responding to any parsed initiation must not panic, and a failed
		// Respond must leave the prekeys unchanged.
		p, err := UnmarshalPrekeys(pk)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Respond(fx.bob.id, p, i, ratchet.Config{}); err != nil && !bytes.Equal(p.Marshal(), pk) {
			t.Fatalf("failed Respond (%v) changed the prekeys", err)
		}
	})
}

func FuzzUnmarshalPrekeys(f *testing.F) {
	for _, b := range newFuzzFixture(f).prekeys {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := UnmarshalPrekeys(in)
		if err != nil {
			return
		}
		got := p.Marshal()
		if in[0] == 1 {
			// Version 1 is read, never written: its conversion must be
			// stable.
			q, err := UnmarshalPrekeys(got)
			if err != nil || !bytes.Equal(q.Marshal(), got) {
				t.Fatalf("version 1 converts to a non-canonical encoding: %v", err)
			}
			return
		}
		if !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
		_ = p.OneTimeCount()
	})
}

// TestFuzzCorpus writes the committed seed corpora with -update.
func TestFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	fx := newFuzzFixture(t)
	writeCorpus(t, "FuzzParseBundle", fx.bundles)
	writeCorpus(t, "FuzzParseInitiation", fx.initiations)
	writeCorpus(t, "FuzzUnmarshalPrekeys", fx.prekeys)
}

func writeCorpus(t *testing.T, target string, seeds [][]byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), testrand.CorpusFile(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
