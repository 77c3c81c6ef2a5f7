package ratchet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
)

// fuzzFixture is a responder mid-conversation: skipped keys in two chains,
// a current chain and a pending next header key, so every Decrypt path is
// reachable from the seeds.
type fuzzFixture struct {
	bobState []byte
	seeds    [][]byte // valid messages for that state, then states
	states   [][]byte
}

func newFuzzFixture(t testing.TB) fuzzFixture {
	r := testRand("fuzz fixture")
	a, b := newPair(t, r, Config{MaxSkip: 50})
	var fx fuzzFixture
	lost1 := mustEncrypt(t, a, r, "lost in chain 1")
	mustDecrypt(t, b, r, mustEncrypt(t, a, r, "chain 1"), "chain 1")
	mustDecrypt(t, a, r, mustEncrypt(t, b, r, "reply"), "reply")
	lost2 := mustEncrypt(t, a, r, "lost in chain 2")
	mustDecrypt(t, b, r, mustEncrypt(t, a, r, "chain 2"), "chain 2")
	seen := mustEncrypt(t, a, r, "seen")
	mustDecrypt(t, b, r, seen, "seen")
	next := mustEncrypt(t, a, r, "next in chain")
	far := mustEncrypt(t, a, r, "further in chain")
	mustDecrypt(t, a, r, mustEncrypt(t, b, r, "reply 2"), "reply 2")
	newChain := mustEncrypt(t, a, r, "new chain")
	fx.bobState = b.Marshal()
	fx.seeds = [][]byte{lost1, lost2, seen, next, far, newChain, {}, {Version}, make([]byte, Overhead)}
	fx.states = [][]byte{fx.bobState, a.Marshal()}
	return fx
}

func FuzzDecrypt(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, s := range fx.seeds {
		f.Add(s)
	}
	rand := testrand.New("fuzz decrypt")
	bob, err := UnmarshalSession(fx.bobState)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		before := bob.Marshal()
		pt, err := bob.Decrypt(rand, msg)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if !bytes.Equal(before, bob.Marshal()) {
				t.Fatalf("failed Decrypt (%v) changed the session", err)
			}
			return
		}
		// A success can only be one of the genuine seed messages: reset.
		if bob, err = UnmarshalSession(fx.bobState); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzUnmarshalSession(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, s := range fx.states {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalSession(b)
		if err != nil {
			return
		}
		if got := s.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("re-marshal differs:\n in %x\nout %x", b, got)
		}
		// A decoded state must be usable without panicking.
		r := testrand.New("fuzz state")
		if m, err := s.Encrypt(r, []byte("x")); err == nil {
			_, _ = s.Decrypt(r, m)
		}
	})
}

// TestFuzzCorpus writes the committed seed corpora with -update.
func TestFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	fx := newFuzzFixture(t)
	writeCorpus(t, "FuzzDecrypt", fx.seeds)
	writeCorpus(t, "FuzzUnmarshalSession", fx.states)
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
