// Package testnet holds what samizdat's tests share: golden-file checks,
// network-namespace primitives (netns.go), the censorship lab (lab.go) and
// real samizdat daemons in namespaces (daemon.go) (DESIGN §3, §10). Only
// tests import it; it must never be linked into the samizdat binary.
package testnet

import (
	"bytes"
	"os"
	"testing"
)

// Golden compares got with the committed file at path and returns the
// file's content. With update, it first rewrites the file from got (run
// the test with -update, then review the diff).
func Golden(tb testing.TB, path string, got []byte, update bool) []byte {
	tb.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Fatalf("output differs from %s; if the change is intended, rerun with -update and review the diff", path)
	}
	return want
}
