package p2p

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNetworkPolicy enforces what the package must never do (see the package
// comment) by reading its own non-test source: no public bootstrap peers, no
// libp2p default listen addresses or transports, UPnP only behind its
// Config switch, and a package doc comment that says so.
func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	// Built by concatenation so this file does not match itself.
	forbidden := []string{
		"Default" + "BootstrapPeers",
		"GetDefault" + "BootstrapPeerAddrInfos",
		"Default" + "ListenAddrs",
		"Default" + "Transports",
		"libp2p." + "Defaults",
		"EnableNAT" + "Service(",
		"EnableAuto" + "NATv2(",
		"/ip" + "fs/kad",
		"amino" + ".",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	docFound := false
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range forbidden {
			if strings.Contains(string(src), bad) {
				t.Errorf("%s uses %s", f, bad)
			}
		}
		if n := strings.Count(string(src), "NATPort"+"Map()"); n > 0 && !strings.Contains(string(src), "if cfg.EnableNATPortMap {\n\t\topts = append(opts, libp2p.NATPort"+"Map())") {
			t.Errorf("%s: NATPortMap outside its Config switch", f)
		}
		af, err := parser.ParseFile(fset, f, src, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		if af.Doc != nil && strings.HasPrefix(af.Doc.Text(), "Package p2p ") {
			docFound = true
			if !strings.Contains(af.Doc.Text(), "must never") {
				t.Errorf("%s: package comment does not say what the package must never do", f)
			}
		}
	}
	if !docFound {
		t.Error("no package doc comment")
	}
}
