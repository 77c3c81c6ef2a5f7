package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestWebAPICalls exercises the calls the web app uses, through the Go
// client, on two real nodes: chats with unread counts, paging from the
// end, read markers, search, verification, the invite QR code and
// connectivity.
func TestWebAPICalls(t *testing.T) {
	ctx := context.Background()
	a, b := startNode(t, "alice"), startNode(t, "bob")
	ca, cb := apiclient.New(a.APIAddr, a.Token), apiclient.New(b.APIAddr, b.Token)
	inv, err := cb.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddContact(ctx, inv.Link, "Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddContact(ctx, "samizdat:broken", ""); !isCode(err, apiclient.CodeBadInvite) {
		t.Fatalf("bad invite: %v", err)
	}
	for i := range 5 {
		if _, err := ca.Send(ctx, "Bob", fmt.Sprintf("hello number %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var chats []apiclient.Chat
	waitFor(t, "bob's chat with 5 unread", func() bool {
		chats, err = cb.Chats(ctx)
		return err == nil && len(chats) == 1 && chats[0].Unread == 5
	})
	if chats[0].Contact.Name != "alice" || chats[0].Last == nil || chats[0].Last.Body != "hello number 4" {
		t.Fatalf("chat = %+v", chats[0])
	}
	p, err := cb.MessagesBefore(ctx, "alice", 0, 2)
	if err != nil || len(p.Messages) != 2 || !p.More || p.Messages[1].Body != "hello number 4" {
		t.Fatalf("newest page: %+v %v", p, err)
	}
	p, err = cb.MessagesBefore(ctx, "alice", p.Messages[0].Seq, 10)
	if err != nil || len(p.Messages) != 3 || p.More || p.Messages[0].Body != "hello number 0" {
		t.Fatalf("older page: %+v %v", p, err)
	}
	if r, err := cb.MarkRead(ctx, "alice", 0); err != nil || r.Marked != 5 {
		t.Fatalf("MarkRead = %+v %v", r, err)
	}
	if chats, _ = cb.Chats(ctx); chats[0].Unread != 0 {
		t.Fatalf("unread after MarkRead: %d", chats[0].Unread)
	}
	hits, err := cb.Search(ctx, "numb", 0)
	if err != nil || len(hits) != 5 || hits[0].ContactName != "alice" || hits[0].Body != "hello number 4" {
		t.Fatalf("search: %+v %v", hits, err)
	}
	if hits, err := cb.Search(ctx, `"NEAR(`, 0); err != nil || len(hits) != 0 {
		t.Fatalf("search for FTS syntax: %+v %v", hits, err)
	}
	c, err := ca.Verify(ctx, "Bob", true)
	if err != nil || !c.Verified {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if _, err := ca.Verify(ctx, "Mallory", true); !isCode(err, apiclient.CodeUnknownContact) {
		t.Fatalf("verify unknown: %v", err)
	}
	conn, err := ca.Connectivity(ctx)
	if err != nil || len(conn.Contacts) != 1 || conn.Contacts[0].Link != apiclient.LinkDirect || conn.Overall != apiclient.LinkDirect {
		t.Fatalf("connectivity: %+v %v", conn, err)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+a.APIAddr+"/api/v1/invite/qr", nil)
	req.Header.Set("Authorization", "Bearer "+a.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := png.Decode(bytes.NewReader(body)); err != nil || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("invite QR: %v %q", err, resp.Header.Get("Content-Type"))
	}
	if _, err := ca.Init(ctx, apiclient.InitRequest{Name: "again", NoPassphrase: true}); !isCode(err, apiclient.CodeExists) {
		t.Fatalf("init on a running node: %v", err)
	}
}

// TestStartOrWait creates a profile through the API of a node started
// without one, restarts it locked (a passphrase profile without the
// passphrase) and unlocks it, on the same address throughout; the token
// of a waiting node stays valid once it runs.
func TestStartOrWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := filepath.Join(t.TempDir(), "p")
	run := func() (*apiclient.Client, string, <-chan *Node) {
		type waiting struct{ addr, loginURL, state string }
		w := make(chan waiting, 1)
		started := make(chan *Node, 1)
		go func() {
			n, err := StartOrWait(ctx, Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true}, func(addr, token, state string) {
				w <- waiting{addr, token, state}
			})
			if err != nil {
				t.Error(err)
			}
			started <- n
		}()
		select {
		case x := <-w:
			c, err := apiclient.Login(ctx, x.loginURL)
			if err != nil || c.Addr() != x.addr {
				t.Fatalf("login with %s: %v", x.loginURL, err)
			}
			return c, x.state, started
		case <-time.After(20 * time.Second):
			t.Fatal("not waiting")
		}
		return nil, "", nil
	}
	c, state, started := run()
	if state != apiclient.SetupNew {
		t.Fatalf("state %q", state)
	}
	if st, err := c.Status(ctx); err != nil || st.Setup != apiclient.SetupNew {
		t.Fatalf("status while waiting: %+v %v", st, err)
	}
	if _, err := c.Contacts(ctx); !isCode(err, apiclient.CodeNotReady) {
		t.Fatalf("contacts while waiting: %v", err)
	}
	if _, err := apiclient.New(c.Addr(), "wrong").Status(ctx); !isCode(err, apiclient.CodeUnauthorized) {
		t.Fatalf("wrong token while waiting: %v", err)
	}
	if _, err := c.Init(ctx, apiclient.InitRequest{Name: ""}); err == nil {
		t.Fatal("init without a name worked")
	}
	st, err := c.Init(ctx, apiclient.InitRequest{Name: "Alice", Passphrase: "correct horse"})
	if err != nil || st.Name != "Alice" || !st.Running {
		t.Fatalf("init: %+v %v", st, err)
	}
	n := <-started
	if cs, err := c.Contacts(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("contacts after init: %v %v", cs, err)
	}
	addr := n.APIAddr
	n.Close()

	c, state, started = run()
	if state != apiclient.SetupLocked || c.Addr() != addr {
		t.Fatalf("restart: state %q at %s (was %s)", state, c.Addr(), addr)
	}
	if _, err := c.Unlock(ctx, "wrong horse"); !isCode(err, apiclient.CodeWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if st, err := c.Unlock(ctx, "correct horse"); err != nil || st.Name != "Alice" {
		t.Fatalf("unlock: %+v %v", st, err)
	}
	(<-started).Close()
	if _, err := os.Stat(filepath.Join(dir, APIFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("api.json left after Close: %v", err)
	}
}

func isCode(err error, code string) bool {
	var e *apiclient.Error
	return errors.As(err, &e) && e.Code == code
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
