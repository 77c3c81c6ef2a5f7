package web_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/web"
)

// maxAssets is the budget of the app's JavaScript and CSS, uncompressed.
const maxAssets = 200 << 10

// TestAssets checks the size budget and that the app loads nothing from
// other sites: no absolute URL in any file but the events WebSocket of
// the page's own host.
func TestAssets(t *testing.T) {
	total := 0
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(\s*['"]?(https?:|//)`)
	err := fs.WalkDir(web.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(web.Files(), path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".js") || strings.HasSuffix(path, ".css") {
			total += len(b)
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to another site: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("JS and CSS: %d bytes (%.1f KiB)", total, float64(total)/1024)
	if total > maxAssets {
		t.Errorf("JS and CSS are %d bytes, over the budget of %d", total, maxAssets)
	}
}

// TestHandler checks the security headers and that only GET is served.
func TestHandler(t *testing.T) {
	h := web.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1234/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `<script type="module" src="app.js">`) {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Body.String())
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "connect-src 'self' ws://127.0.0.1:1234"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if rec.Header().Get("Referrer-Policy") != "no-referrer" || rec.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers: %v", rec.Header())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/app.js", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("app.js served as %q", ct)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d", rec.Code)
	}
}
