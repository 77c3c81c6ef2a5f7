package keys

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
)

func fuzzSeeds(t testing.TB) (private, public [][]byte) {
	for _, s := range []string{"fuzz a", "fuzz b"} {
		id := newID(t, s)
		private = append(private, id.Marshal())
		public = append(public, id.Public().Marshal())
	}
	return private, public
}

func FuzzParsePublicIdentity(f *testing.F) {
	_, pub := fuzzSeeds(f)
	for _, b := range pub {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParsePublicIdentity(in)
		if err != nil {
			return
		}
		if got := p.Marshal(); !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
		_, _ = p.DHKey()
		_ = SafetyNumber(p, p)
	})
}

func FuzzUnmarshalIdentity(f *testing.F) {
	priv, _ := fuzzSeeds(f)
	for _, b := range priv {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		id, err := UnmarshalIdentity(in)
		if err != nil {
			return
		}
		if got := id.Marshal(); !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
		if _, err := ParsePublicIdentity(id.Public().Marshal()); err != nil {
			t.Fatalf("public half does not parse: %v", err)
		}
	})
}

// TestFuzzCorpus writes the committed seed corpora with -update.
func TestFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	priv, pub := fuzzSeeds(t)
	writeCorpus(t, "FuzzUnmarshalIdentity", priv)
	writeCorpus(t, "FuzzParsePublicIdentity", pub)
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
