package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestUpWithoutProfile runs `samizdat up` on an empty directory: it
// prints the web app's address and waits; the profile is created through
// the API (as the page does, after trading the printed one-time login code
// for the token), and the node then runs; `samizdat open` prints a new
// one-time address of the same node.
func TestUpWithoutProfile(t *testing.T) {
	t.Parallel()
	p := newProfile(t, "fresh")
	p.start()
	url := regexp.MustCompile(`open: (http://127\.0\.0\.1:\d+/#login=([0-9a-f]{32}))`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; {
		m = url.FindStringSubmatch(p.out.String())
		if m == nil && time.Now().After(deadline) {
			t.Fatalf("no open: line in\n%s", p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.out.String(), "no profile yet") {
		t.Errorf("up says %q", p.out.String())
	}
	if got := strings.TrimSpace(p.must("open", "--no-browser")); got == m[1] || !strings.HasPrefix(got, strings.SplitN(m[1], "#", 2)[0]+"#login=") {
		t.Errorf("open printed %q, up printed %q", got, m[1])
	}
	addr := strings.TrimPrefix(strings.SplitN(m[1], "/#", 2)[0], "http://")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "app.js") {
		t.Fatalf("GET / = %d %q", resp.StatusCode, page)
	}
	p.fails("not open yet", "contacts")
	c, err := apiclient.Login(context.Background(), m[1])
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Init(context.Background(), apiclient.InitRequest{Name: "Fresh", NoPassphrase: true})
	if err != nil || st.Name != "Fresh" {
		t.Fatalf("init through the API: %+v %v", st, err)
	}
	if out := p.must("status"); !strings.Contains(out, "Fresh") || !strings.Contains(out, "running") {
		t.Errorf("status after init: %q", out)
	}
	p.stop()
}

// TestOpenKeepsTokenOffCommandLine: `samizdat open` starts the browser
// with nothing secret on its command line (which any local user reads in
// /proc/*/cmdline): the browser gets the path of a 0600 page that forwards
// to a one-time login address; the code in it gives the token once.
func TestOpenKeepsTokenOffCommandLine(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	rec := filepath.Join(t.TempDir(), "xdg")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + rec + ".args\nstat -c %a \"$1\" > " + rec + ".mode\ncp \"$1\" " + rec + ".page\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p := newProfile(t, "opener", "DISPLAY=:99", "WAYLAND_DISPLAY=", "PATH="+bin+":"+os.Getenv("PATH"))
	p.must("init", "--name", "opener", "--no-passphrase")
	p.start()
	b, err := os.ReadFile(filepath.Join(p.dir, "api.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info apiclient.Info
	if err := json.Unmarshal(b, &info); err != nil || len(info.Token) != 64 {
		t.Fatalf("api.json: %s", b)
	}
	printed := strings.TrimSpace(p.must("open"))
	args, err := os.ReadFile(rec + ".args")
	if err != nil {
		t.Fatalf("the browser was not started: %v", err)
	}
	if strings.Contains(string(args), info.Token) || strings.Contains(string(args), "login=") {
		t.Fatalf("the browser's command line carries a secret: %q", args)
	}
	if mode, _ := os.ReadFile(rec + ".mode"); strings.TrimSpace(string(mode)) != "600" {
		t.Errorf("the page handed to the browser has mode %s", mode)
	}
	page, _ := os.ReadFile(rec + ".page")
	if strings.Contains(string(page), info.Token) {
		t.Fatal("the page holds the token itself")
	}
	u := regexp.MustCompile(`http://127\.0\.0\.1:\d+/#login=[0-9a-f]{32}`).FindString(string(page))
	if u == "" || u != printed {
		t.Fatalf("page %q, printed %q", page, printed)
	}
	ctx := context.Background()
	c, err := apiclient.Login(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status with the traded token: %v", err)
	}
	if _, err := apiclient.Login(ctx, u); err == nil {
		t.Fatal("the login code worked twice")
	}
	p.stop()
}
