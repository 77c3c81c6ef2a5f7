package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

func TestParseHookCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "/usr/bin/notify-send", want: []string{"/usr/bin/notify-send"}},
		{in: "/opt/my tools/ring $HOME", want: []string{"/opt/my tools/ring $HOME"}}, // never split, never expanded
		{in: `["notify-send","-u","critical","$SAMIZDAT_CHAT"]`, want: []string{"notify-send", "-u", "critical", "$SAMIZDAT_CHAT"}},
		{in: "", bad: true},
		{in: "[]", bad: true},
		{in: `["a",1]`, bad: true},
		{in: `[""]`, bad: true},
	} {
		got, err := ParseHookCommand(tc.in)
		if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
			t.Errorf("ParseHookCommand(%q) = %q, %v", tc.in, got, err)
		}
	}
}

// TestHookCollapse: messages of one chat within the interval collapse into
// one run with their count; other chats and alerts are not held back.
func TestHookCollapse(t *testing.T) {
	h := startHooks(nil, HookOptions{OnMessage: []string{"x"}, OnAlert: []string{"y"}, Interval: time.Hour}, slog.New(slog.DiscardHandler))
	defer h.Close()
	var mu sync.Mutex
	var runs []hookRun
	h.spawn = func(_ []string, r hookRun) { mu.Lock(); runs = append(runs, r); mu.Unlock() }
	got := func(n int) []hookRun {
		t.Helper()
		poll(t, "runs", func() bool { mu.Lock(); defer mu.Unlock(); return len(runs) >= n })
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(runs)
	}
	for i := range 5 {
		h.message("chat", "alice", hookRun{event: "message", kind: "chat", chat: "alice", text: string(rune('a' + i))})
	}
	h.message("group", "g1", hookRun{event: "message", kind: "group", chat: "Team"})
	for range 3 {
		h.run(h.o.OnAlert, hookRun{event: "alert", count: 1})
	}
	rs := got(5) // alice's first, Team's first, three alerts
	h.flush("chat:alice")
	rs = got(6)
	var alice []hookRun
	alerts := 0
	for _, r := range rs {
		switch {
		case r.chat == "alice":
			alice = append(alice, r)
		case r.event == "alert":
			alerts++
		}
	}
	if alerts != 3 || len(alice) != 2 || alice[0].count != 1 || alice[1].count != 4 || alice[1].text != "e" {
		t.Fatalf("runs: %+v", rs)
	}
	h.o.Muted = func(kind, id string) bool { return kind == "group" }
	h.message("group", "g1", hookRun{event: "message", kind: "group"})
	h.mu.Lock()
	pending := h.chats["group:g1"].pending
	h.mu.Unlock()
	if pending != 0 {
		t.Fatal("a muted chat's message was queued")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestOnAlertHook: a real script run by --on-alert / --on-message gets the
// channel's or contact's name and the text in its environment; a script
// that hangs is killed after its timeout and delivery goes on.
func TestOnAlertHook(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	out := filepath.Join(tmp, "hook.log")
	script := filepath.Join(tmp, "hook.sh")
	// One line per run; a text "hang" makes the script hang (with a child).
	body := "#!/bin/sh\necho \"$SAMIZDAT_EVENT|$SAMIZDAT_KIND|$SAMIZDAT_CHAT|$SAMIZDAT_FROM|$SAMIZDAT_COUNT|$SAMIZDAT_TEXT|$1\" >> " + out + "\n" +
		"if [ \"$SAMIZDAT_TEXT\" = hang ]; then sleep 600; fi\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	an := startNode(t, "alice")
	dir := filepath.Join(tmp, "bob")
	if _, err := Init(ctx, dir, "bob", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	bn, err := Start(ctx, Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Hooks:  HookOptions{OnAlert: []string{script, "alert-arg"}, OnMessage: []string{script, "msg-arg"}, Text: true, Timeout: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bn.Close() })
	a, b := client(an), client(bn)
	lines := func() []string {
		data, _ := os.ReadFile(out)
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	has := func(line string) func() bool {
		return func() bool { return slices.Contains(lines(), line) }
	}

	inv, err := b.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddContact(ctx, inv.Link, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, "bob", "hello $HOME `id`"); err != nil {
		t.Fatal(err)
	}
	poll(t, "the message hook", has("message|chat|alice|alice|1|hello $HOME `id`|msg-arg"))

	g, err := a.CreateGroup(ctx, "Team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.GroupInvite(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	poll(t, "bob invited", func() bool {
		gs, err := b.Groups(ctx)
		return err == nil && len(gs) == 1 && len(gs[0].Members) == 2
	})
	if _, err := b.GroupJoin(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GroupSend(ctx, g.ID, "standup at 10"); err != nil {
		t.Fatal(err)
	}
	poll(t, "the group message hook", has("message|group|Team|alice|1|standup at 10|msg-arg"))

	ch, err := a.CreateChannel(ctx, "Town alerts", false)
	if err != nil {
		t.Fatal(err)
	}
	link, err := a.ChannelInvite(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.FollowChannel(ctx, link.Link); err != nil {
		t.Fatal(err)
	}
	// Plain posts until bob gets one: the topic's mesh is formed.
	poll(t, "bob gets a plain post", func() bool {
		ps, err := b.ChannelPosts(ctx, ch.ID, 0)
		if err == nil && len(ps.Posts) > 0 {
			return true
		}
		_, _ = a.Post(ctx, ch.ID, "warm-up", false)
		return false
	})
	t0 := time.Now()
	if _, err := a.Post(ctx, ch.ID, "hang", true); err != nil {
		t.Fatal(err)
	}
	poll(t, "the alert hook", has("alert|channel|Town alerts|Town alerts|1|hang|alert-arg"))
	t.Logf("alert post to hook script: %v", time.Since(t0))
	if _, err := a.Post(ctx, ch.ID, "missiles", true); err != nil {
		t.Fatal(err)
	}
	poll(t, "the second alert, while the first hangs", has("alert|channel|Town alerts|Town alerts|1|missiles|alert-arg"))
	poll(t, "the hanging hook killed", func() bool { return strings.Contains(logs.String(), "hookTimedOut") })
	if _, err := a.Send(ctx, "bob", "still delivered"); err != nil {
		t.Fatal(err)
	}
	poll(t, "delivery goes on", func() bool {
		conv, err := b.Messages(ctx, "alice", 0)
		return err == nil && len(conv.Messages) == 2
	})
	for _, l := range lines() {
		if strings.Contains(l, "warm-up") {
			t.Errorf("a plain post ran the alert hook: %s", l)
		}
	}
}

// TestOnRequestHook: a stranger's first message runs --on-request with the
// request's id and neither its claimed name nor its text, even with
// --notify-text; a contact's message does not run it.
func TestOnRequestHook(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	out := filepath.Join(tmp, "hook.log")
	script := filepath.Join(tmp, "hook.sh")
	body := "#!/bin/sh\necho \"$SAMIZDAT_EVENT|$SAMIZDAT_KIND|$SAMIZDAT_CHAT|$SAMIZDAT_CHAT_ID|$SAMIZDAT_FROM|$SAMIZDAT_COUNT|$SAMIZDAT_TEXT|$1\" >> " + out + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	friend, stranger := startNode(t, "alice"), startNode(t, "mallory")
	dir := filepath.Join(tmp, "bob")
	if _, err := Init(ctx, dir, "bob", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	bn, err := Start(ctx, Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true,
		Logger: slog.New(slog.DiscardHandler),
		Hooks:  HookOptions{OnRequest: []string{script, "req-arg"}, Text: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bn.Close() })
	lines := func() []string {
		data, _ := os.ReadFile(out)
		if len(data) == 0 {
			return nil
		}
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}

	// A contact (invited) writes: no request, no run.
	inv, err := client(bn).Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client(friend).AddContact(ctx, inv.Link, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := client(friend).Send(ctx, "bob", "hi, it's alice"); err != nil {
		t.Fatal(err)
	}
	poll(t, "alice's message", func() bool {
		conv, err := client(bn).Messages(ctx, "alice", 0)
		return err == nil && len(conv.Messages) == 1
	})

	// A stranger writes from bob's card alone (forwarded, no secret).
	link, err := bn.Messenger.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pi, err := identity.ParseInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := identity.EncodeInvite(pi.SignedCard, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stranger.Messenger.AddContact(ctx, fwd, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.Messenger.Send(ctx, c.Name, "secret offer"); err != nil {
		t.Fatal(err)
	}
	var reqs []messenger.RequestInfo
	poll(t, "the request", func() bool {
		reqs, err = bn.Messenger.Requests(ctx)
		return err == nil && len(reqs) == 1
	})
	want := fmt.Sprintf("request|request||%d||1||req-arg", reqs[0].ID)
	poll(t, "the request hook", func() bool { return slices.Contains(lines(), want) })
	if ls := lines(); len(ls) != 1 {
		t.Fatalf("hook runs: %q (want only %q)", ls, want)
	}
}
