package web_test

import (
	"bytes"
	"io/fs"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/web"
)

// TestMediaStringsInAllLanguages: every string media.js adds exists in
// English, Russian and Persian.
func TestMediaStringsInAllLanguages(t *testing.T) { moduleStrings(t, "media.js", 20) }

// TestContactsStringsInAllLanguages: the same for contacts.js (renaming
// and deleting a contact).
func TestContactsStringsInAllLanguages(t *testing.T) { moduleStrings(t, "contacts.js", 13) }

// moduleStrings checks that a module's addStrings block gives every one
// of its (at least min) English strings in Russian and Persian too.
func moduleStrings(t *testing.T, file string, min int) {
	t.Helper()
	b, err := fs.ReadFile(web.Files(), file)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	start, end := strings.Index(src, "addStrings({"), strings.Index(src, "\n});")
	if start < 0 || end < start {
		t.Fatalf("no addStrings block in %s", file)
	}
	block := src[start:end]
	langs := regexp.MustCompile(`(?m)^  (en|ru|fa): \{`).FindAllStringSubmatchIndex(block, -1)
	if len(langs) != 3 {
		t.Fatalf("languages in %s: %d, want en, ru, fa", file, len(langs))
	}
	key := regexp.MustCompile(`(\w+): "`)
	keys := map[string][]string{}
	for i, l := range langs {
		stop := len(block)
		if i+1 < len(langs) {
			stop = langs[i+1][0]
		}
		name := block[l[2]:l[3]]
		for _, m := range key.FindAllStringSubmatch(block[l[1]:stop], -1) {
			keys[name] = append(keys[name], m[1])
		}
		slices.Sort(keys[name])
	}
	if len(keys["en"]) < min {
		t.Fatalf("only %d English strings found in %s", len(keys["en"]), file)
	}
	for _, l := range []string{"ru", "fa"} {
		if !slices.Equal(keys[l], keys["en"]) {
			t.Errorf("%s strings %v\ndiffer from en %v", l, keys[l], keys["en"])
		}
	}
}

// TestJSSyntax parses every module of the app with Node.js, when it is
// installed, so that a syntax error fails here rather than as a blank
// page in the browser tests.
func TestJSSyntax(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (apt-get install nodejs): the syntax check needs it")
	}
	err = fs.WalkDir(web.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		b, err := fs.ReadFile(web.Files(), path)
		if err != nil {
			return err
		}
		cmd := exec.Command(node, "--input-type=module", "--check")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", path, err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
