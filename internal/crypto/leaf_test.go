package crypto

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/samizdat-im/samizdat/"

// forbidden are standard packages the crypto core must not use: it does no
// I/O, no logging, no networking, no clocks and no non-cryptographic
// randomness (STYLE.md rule 2).
var forbidden = map[string]bool{
	"os": true, "log": true, "log/slog": true, "net": true, "net/http": true,
	"time": true, "math/rand": true, "math/rand/v2": true, "unsafe": true,
	"sync": true, "fmt": true, "os/exec": true, "io/ioutil": true, "syscall": true,
}

// TestLeafRules checks every non-test file under internal/crypto: each
// package has a doc comment; imports are the standard library (minus the
// forbidden list), golang.org/x/crypto, or other internal/crypto packages;
// there are no go statements and no package-level variables except error
// sentinels.
func TestLeafRules(t *testing.T) {
	fset := token.NewFileSet()
	docs := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") {
			docs[dir] = true
		} else if _, ok := docs[dir]; !ok {
			docs[dir] = false
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first := strings.Split(p, "/")[0]
			switch {
			case strings.HasPrefix(p, module+"internal/crypto/"):
			case strings.HasPrefix(p, "golang.org/x/crypto/"):
			case strings.Contains(first, "."):
				t.Errorf("%s imports %s: the crypto core may only use the standard library and x/crypto", path, p)
			case forbidden[p]:
				t.Errorf("%s imports %s, which the crypto core must not use", path, p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				t.Errorf("%s: go statement at %v", path, fset.Position(g.Pos()))
			}
			return true
		})
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, name := range spec.(*ast.ValueSpec).Names {
					if !strings.HasPrefix(name.Name, "Err") {
						t.Errorf("%s: package-level variable %s (only error sentinels are allowed)", path, name.Name)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, ok := range docs {
		if !ok {
			t.Errorf("package in %s has no package doc comment", dir)
		}
	}
	if len(docs) < 6 {
		t.Fatalf("walked only %d packages", len(docs))
	}
}
