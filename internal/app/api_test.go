package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/api"
	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/identity"
)

func startNode(t *testing.T, name string) *Node {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), name)
	if _, err := Init(ctx, dir, name, KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	n, err := Start(ctx, Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestAPIAuth(t *testing.T) {
	n := startNode(t, "alice")
	url := "http://" + n.APIAddr + "/api/v1/status"
	do := func(token, origin string) int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e apiclient.Error
		if resp.StatusCode != 200 {
			if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Code == "" || e.Message == "" {
				t.Errorf("status %d without a JSON error body", resp.StatusCode)
			}
		}
		return resp.StatusCode
	}
	cases := []struct {
		name, token, origin string
		want                int
	}{
		{"no token", "", "", 401},
		{"wrong token", strings.Repeat("0", 64), "", 401},
		{"prefix of token", n.Token[:10], "", 401},
		{"right token", n.Token, "", 200},
		{"same origin", n.Token, "http://" + n.APIAddr, 200},
		{"foreign origin", n.Token, "https://evil.example", 403},
		{"foreign origin, no token", "", "https://evil.example", 403},
		{"other local port", n.Token, "http://127.0.0.1:1", 403},
	}
	for _, c := range cases {
		if got := do(c.token, c.origin); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	// The token alone, without the Bearer scheme, is refused too.
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", n.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("token without Bearer: %v %v", resp.StatusCode, err)
	}
	// Unknown calls get a JSON error too.
	req, _ = http.NewRequest(http.MethodPost, url, nil)
	req.Header.Set("Authorization", "Bearer "+n.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e apiclient.Error
	if resp.StatusCode != 404 || json.NewDecoder(resp.Body).Decode(&e) != nil || e.Code != apiclient.CodeNotFound {
		t.Errorf("unknown call: %d %+v", resp.StatusCode, e)
	}
	resp.Body.Close()
}

func TestInviteWithManyAddressesFitsQR(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "many")
	if _, err := Init(ctx, dir, "Александра Константинопольская", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	listen := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/tcp/0/ws",
		"/ip4/127.0.0.2/tcp/0", "/ip4/127.0.0.2/udp/0/quic-v1", "/ip4/127.0.0.3/tcp/0"}
	n, err := Start(ctx, Options{Dir: dir, Listen: listen, APIAddr: "-", LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	link, err := n.Messenger.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(link, "/p2p/") {
		t.Error("card addresses repeat the peer id")
	}
	if err := identity.WriteQR(io.Discard, link); err != nil {
		t.Fatalf("invite of %d characters with %d addresses does not fit a QR code: %v", len(link), len(listen), err)
	}
}

func TestAPIClientFlow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := startNode(t, "alice"), startNode(t, "bob")
	ca := apiclient.New(a.APIAddr, a.Token)
	cb, err := apiclient.Load(ctx, filepath.Join(b.Dir, APIFile))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := cb.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddContact(ctx, inv.Link, ""); err != nil {
		t.Fatal(err)
	}
	events := make(chan apiclient.Event, 16)
	go ca.Events(ctx, func(e apiclient.Event) { events <- e })
	// The stream's first event says the subscription is in place.
	select {
	case e := <-events:
		if e.Type != api.EventSubscribed {
			t.Fatalf("first event %+v, want %q", e, api.EventSubscribed)
		}
	case <-ctx.Done():
		t.Fatal("the events stream did not open")
	}
	m, err := ca.Send(ctx, "bob", "over the API")
	if err != nil || m.State != "queued" || len(m.ID) != 32 {
		t.Fatalf("send: %+v %v", m, err)
	}
	for delivered := false; !delivered; {
		select {
		case e := <-events:
			delivered = e.Type == "state" && e.MessageID == m.ID && e.State == "delivered"
		case <-ctx.Done():
			t.Fatal("no delivered event")
		}
	}
	conv, err := cb.Messages(ctx, "alice", 0)
	if err != nil || len(conv.Messages) != 1 || conv.Messages[0].Body != "over the API" {
		t.Fatalf("bob's messages: %+v %v", conv, err)
	}
	// Errors carry codes.
	var ae *apiclient.Error
	if _, err := ca.Send(ctx, "nobody", "x"); !errors.As(err, &ae) || ae.Code != apiclient.CodeUnknownContact || ae.Status != 404 {
		t.Errorf("unknown contact: %v", err)
	}
	if _, err := ca.AddContact(ctx, "samizdat:garbage", ""); !errors.As(err, &ae) || ae.Code != apiclient.CodeBadInvite {
		t.Errorf("bad invite: %v", err)
	}
	if _, err := ca.Send(ctx, "bob", ""); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("empty message: %v", err)
	}
	bad := apiclient.New(a.APIAddr, "nope")
	if _, err := bad.Status(ctx); !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("bad token: %v", err)
	}
}

func TestProfileLockAndPassphrase(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "p")
	if _, err := Init(ctx, dir, "p", KeySource{Passphrase: "secret words"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, dir, "p", KeySource{NoPassphrase: true}); !errors.Is(err, ErrProfileExists) {
		t.Errorf("second init: %v", err)
	}
	if _, err := Start(ctx, Options{Dir: dir, Keys: KeySource{Passphrase: "wrong"}, APIAddr: "-", LoopbackOnly: true}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	if _, err := Start(ctx, Options{Dir: dir, APIAddr: "-", LoopbackOnly: true}); !errors.Is(err, ErrNeedPassphrase) {
		t.Errorf("no passphrase: %v", err)
	}
	n, err := Start(ctx, Options{Dir: dir, Keys: KeySource{Passphrase: "secret words"}, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, Options{Dir: dir, Keys: KeySource{Passphrase: "secret words"}, APIAddr: "-"}); !errors.Is(err, ErrLocked) {
		t.Errorf("second start: %v", err)
	}
	if _, err := OpenOffline(ctx, dir, KeySource{Passphrase: "secret words"}); !errors.Is(err, ErrLocked) {
		t.Errorf("offline while running: %v", err)
	}
	n.Close()
	o, err := OpenOffline(ctx, dir, KeySource{Passphrase: "secret words"})
	if err != nil {
		t.Fatalf("offline after stop: %v", err)
	}
	o.Close()
	_, err = Start(ctx, Options{Dir: dir, Keys: KeySource{Passphrase: "secret words"}, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "198.18.0.1:80", LoopbackOnly: true})
	if err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Errorf("API on a non-loopback address: %v", err)
	}
	// And the failed start released the profile.
	o, err = OpenOffline(ctx, dir, KeySource{Passphrase: "secret words"})
	if err != nil {
		t.Fatalf("profile still locked after a failed start: %v", err)
	}
	o.Close()
}

func TestDemo(t *testing.T) {
	var out strings.Builder
	if err := RunDemo(context.Background(), &out, DemoOptions{BaseDir: t.TempDir()}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if strings.Count(out.String(), "delivered") < 7 || !strings.Contains(out.String(), "demo finished") ||
		strings.Count(out.String(), "read by all") != 3 || !strings.Contains(out.String(), "ALERT post") || !strings.Contains(out.String(), "raised an alert event") ||
		!strings.Contains(out.String(), "bob has alice's photo") {
		t.Fatalf("demo output:\n%s", out.String())
	}
}

func TestInitAfterAFailedInit(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "p")
	if _, err := Init(ctx, dir, "first", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash before profile.json was written.
	if err := os.Remove(filepath.Join(dir, ProfileFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, dir, "second", KeySource{Passphrase: "pw"}); err != nil {
		t.Fatalf("init after a half-done init: %v", err)
	}
	n, err := Start(ctx, Options{Dir: dir, Keys: KeySource{Passphrase: "pw"}, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Messenger.Name() != "second" {
		t.Fatalf("name %q", n.Messenger.Name())
	}
}
