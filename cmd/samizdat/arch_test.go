package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// The layers of DESIGN.md §3, top to bottom: a package may import only
// packages below it (apiclient is a leaf holding the API types, so the API
// server may use them too).
var layers = []string{
	"cmd/samizdat",
	"internal/cli",
	"internal/app",
	"internal/api",
	"internal/apiclient",
	"internal/web",
	"internal/messenger",
	"internal/media",
	"internal/devices",
	"internal/mesh",
	"internal/mailbox",
	"internal/p2p",
	"internal/crypto",
	"internal/identity",
	"internal/wire",
	"internal/store",
	"internal/testnet",
}

// allowed lists imports that go up the list on purpose.
var allowed = map[[2]string]bool{
	// identity turns crypto keys into account ids and cards.
	{"internal/identity", "internal/crypto"}: true,
	// messenger, app and api use identity/wire/store/crypto below them: fine
	// by order; these exceptions are for upward edges only.
}

// onlyImporters names packages that only some packages may import.
var onlyImporters = map[string][]string{
	"github.com/libp2p/":        {"internal/p2p"},
	"github.com/multiformats/":  {"internal/p2p"},
	"internal/app":              {"cmd/samizdat", "internal/cli"},
	"database/sql":              {"internal/store"},
	"github.com/ncruces/":       {"internal/store"},
	"lukechampine.com/adiantum": {"internal/store"},
}

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Dir        string
}

const module = "github.com/samizdat-im/samizdat/"

var (
	listOnce sync.Once
	listed   []pkg
	listErr  error
)

// listPackages lists the module's packages, once for both tests that read
// them (`go list` of the whole module takes seconds).
func listPackages(t *testing.T) []pkg {
	t.Helper()
	listOnce.Do(func() { listed, listErr = goList() })
	if listErr != nil {
		t.Fatal(listErr)
	}
	return listed
}

func goList() ([]pkg, error) {
	out, err := exec.Command("go", "list", "-json", "../../...").Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		return nil, fmt.Errorf("go list found only %d packages", len(pkgs))
	}
	return pkgs, nil
}

func layerOf(rel string) int {
	for i, l := range layers {
		if rel == l || strings.HasPrefix(rel, l+"/") {
			return i
		}
	}
	return -1
}

func TestImportDirection(t *testing.T) {
	t.Parallel()
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		from := layerOf(rel)
		if from < 0 {
			t.Errorf("package %s is in no layer of DESIGN.md §3", rel)
			continue
		}
		for _, imp := range p.Imports {
			for prefix, who := range onlyImporters {
				full := prefix
				if strings.HasPrefix(prefix, "internal/") {
					full = module + prefix
				}
				if imp == full || strings.HasPrefix(imp, strings.TrimSuffix(full, "/")+"/") {
					ok := false
					for _, w := range who {
						if rel == w || strings.HasPrefix(rel, w+"/") {
							ok = true
						}
					}
					if !ok {
						t.Errorf("%s imports %s, which only %v may import", rel, imp, who)
					}
				}
			}
			if !strings.HasPrefix(imp, module) {
				continue
			}
			irel := strings.TrimPrefix(imp, module)
			to := layerOf(irel)
			if to < 0 || to >= from || layers[to] == layers[from] && strings.HasPrefix(irel, "internal/crypto") {
				continue
			}
			if !allowed[[2]string{layers[from], layers[to]}] {
				t.Errorf("%s imports %s: imports must point down DESIGN.md §3's list", rel, irel)
			}
		}
		if strings.HasPrefix(rel, "internal/crypto") {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, module) && !strings.HasPrefix(imp, module+"internal/crypto") && !strings.HasPrefix(imp, module+"internal/wire") {
					t.Errorf("crypto package %s imports %s: crypto imports nothing of ours but wire", rel, imp)
				}
				if imp == "log" || imp == "log/slog" || imp == "net" || imp == "os" {
					t.Errorf("crypto package %s imports %s: crypto does no I/O and no logging", rel, imp)
				}
			}
		}
	}
}

func TestPackageDocs(t *testing.T) {
	t.Parallel()
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", p.ImportPath)
		}
	}
}
