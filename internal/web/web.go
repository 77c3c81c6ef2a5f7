// Package web is samizdat's web app: static HTML, CSS and plain JavaScript
// modules embedded in the binary (no build step, nothing fetched from
// other sites), served by the local API at / on 127.0.0.1. The app holds
// no secret: it asks the API for everything with the token it trades the
// one-time login code it was opened with for (http://127.0.0.1:PORT/#login=…;
// the token is kept in the tab's sessionStorage).
// It must never load code, fonts or images from anywhere but the daemon.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Files returns the app's files (for size checks and tests).
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// csp allows only what the app itself serves: scripts, styles and
// connections (HTTP and the events WebSocket) to this origin, images from
// it and from blob: URLs (the invite QR code), no framing by other pages.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; connect-src 'self' "

// Handler serves the app. Every path outside the app's files answers
// 404; index.html is served at /.
func Handler() http.Handler {
	files := http.FileServerFS(Files())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp+"ws://"+r.Host)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		if strings.HasSuffix(r.URL.Path, ".js") {
			h.Set("Content-Type", "text/javascript; charset=utf-8")
		}
		files.ServeHTTP(w, r)
	})
}
