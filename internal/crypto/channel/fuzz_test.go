package channel

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
)

func fuzzSeeds(t testing.TB) [][]byte {
	owner, pub := newOwner(t, "fuzz")
	var seeds [][]byte
	for _, p := range chain(t, owner, pub, "first", "second, an alert", "") {
		seeds = append(seeds, p.Marshal())
	}
	return seeds
}

func FuzzParsePost(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	_, pub := newOwner(f, "fuzz")
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParsePost(in)
		if err != nil {
			return
		}
		if got := p.Marshal(); !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
		_ = Verify(pub, p)
		_ = VerifyNext(p, p)
	})
}

// TestFuzzCorpus writes the committed seed corpus with -update.
func TestFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParsePost")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds(t) {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), testrand.CorpusFile(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
