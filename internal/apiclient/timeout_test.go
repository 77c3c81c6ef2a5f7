package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A file upload that takes longer than the call timeout completes, while
// an ordinary call that takes as long is cut off. The client once had a
// 60 s http.Client.Timeout, which cut a large upload off mid-body.
func TestFileCallsOutliveCallTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// Answer only once the test says so: after the call timeout has
		// passed for the ordinary call.
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/files/upload", "/api/v1/files":
			io.WriteString(w, `{"id":"m1"}`)
		default:
			io.WriteString(w, `{}`)
		}
	}))
	defer srv.Close()
	c := New(strings.TrimPrefix(srv.URL, "http://"), "tok")
	c.timeout = 50 * time.Millisecond

	// The ordinary call must fail on its own deadline, with the server
	// still holding it.
	_, err := c.Status(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("status with a stalled server: %v, want a deadline error", err)
	}

	type result struct {
		m   Message
		err error
	}
	up := make(chan result, 1)
	go func() {
		m, err := c.Upload(context.Background(), UploadRequest{Contact: "bob", Name: "a.bin"}, strings.NewReader("data"), 4)
		up <- result{m, err}
	}()
	send := make(chan result, 1)
	go func() {
		m, err := c.SendFile(context.Background(), "bob", "/tmp/a.bin", "")
		send <- result{m, err}
	}()
	// Hold both past the call timeout: neither may end on it.
	select {
	case r := <-up:
		t.Fatalf("upload ended before the server answered: %+v", r)
	case r := <-send:
		t.Fatalf("send file ended before the server answered: %+v", r)
	case <-time.After(4 * c.timeout):
	}
	close(release)
	for name, ch := range map[string]chan result{"upload": up, "send file": send} {
		r := <-ch
		if r.err != nil || r.m.ID != "m1" {
			t.Fatalf("%s: %+v, %v", name, r.m, r.err)
		}
	}

	// A caller's own deadline still ends a file call.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	release2 := make(chan struct{})
	defer close(release2)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release2:
		case <-r.Context().Done():
		}
	})
	if _, err := c.SendFile(ctx, "bob", "/tmp/a.bin", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send file past the caller's deadline: %v", err)
	}
}
