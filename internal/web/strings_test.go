package web_test

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/web"
)

// TestMediaStringsInAllLanguages: every string media.js adds exists in
// English, Russian and Persian.
func TestMediaStringsInAllLanguages(t *testing.T) {
	b, err := fs.ReadFile(web.Files(), "media.js")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	start, end := strings.Index(src, "addStrings({"), strings.Index(src, "\n});")
	if start < 0 || end < start {
		t.Fatal("no addStrings block in media.js")
	}
	block := src[start:end]
	langs := regexp.MustCompile(`(?m)^  (en|ru|fa): \{`).FindAllStringSubmatchIndex(block, -1)
	if len(langs) != 3 {
		t.Fatalf("languages in media.js: %d, want en, ru, fa", len(langs))
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
	if len(keys["en"]) < 20 {
		t.Fatalf("only %d English strings found", len(keys["en"]))
	}
	for _, l := range []string{"ru", "fa"} {
		if !slices.Equal(keys[l], keys["en"]) {
			t.Errorf("%s strings %v\ndiffer from en %v", l, keys[l], keys["en"])
		}
	}
}
