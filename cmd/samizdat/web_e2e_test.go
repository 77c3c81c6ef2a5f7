package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestUpWithoutProfile runs `samizdat up` on an empty directory: it
// prints the web app's address and waits; the profile is created through
// the API (as the page does), and the node then runs; `samizdat open`
// prints the same address.
func TestUpWithoutProfile(t *testing.T) {
	p := newProfile(t, "fresh")
	p.start()
	url := regexp.MustCompile(`open: (http://127\.0\.0\.1:\d+/#token=([0-9a-f]{64}))`)
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
	if got := strings.TrimSpace(p.must("open", "--no-browser")); got != m[1] {
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
	c := apiclient.New(addr, m[2])
	st, err := c.Init(context.Background(), apiclient.InitRequest{Name: "Fresh", NoPassphrase: true})
	if err != nil || st.Name != "Fresh" {
		t.Fatalf("init through the API: %+v %v", st, err)
	}
	if out := p.must("status"); !strings.Contains(out, "Fresh") || !strings.Contains(out, "running") {
		t.Errorf("status after init: %q", out)
	}
	p.stop()
}
