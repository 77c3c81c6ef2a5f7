package app

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestSettingsAPI: settings are kept by the node across a restart, a PUT
// keeps the fields it leaves out, bad values are refused, and the read
// receipts setting takes effect at once.
func TestSettingsAPI(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "bob")
	if _, err := Init(ctx, dir, "bob", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	start := func() *Node {
		n, err := Start(ctx, Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	bn := start()
	b := client(bn)
	st, err := b.Settings(ctx)
	if err != nil || !st.NotifyAlerts || !st.ShowText || !st.ReadReceipts || st.Language != "" || len(st.Muted) != 0 {
		t.Fatalf("defaults: %+v %v", st, err)
	}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	st.ShowText, st.Language, st.SoundMessages = false, "fa", false
	st.Muted = map[string]time.Time{"group:ab12": until, "chat:old": time.Now().Add(-time.Minute)}
	if st, err = b.PutSettings(ctx, st); err != nil || st.ShowText || st.Language != "fa" || len(st.Muted) != 1 {
		t.Fatalf("put: %+v %v", st, err)
	}
	for _, bad := range []apiclient.Settings{
		{Language: "de"},
		{Muted: map[string]time.Time{"channel:ab": until}}, // alerts cannot be muted
	} {
		if _, err := b.PutSettings(ctx, bad); apiStatus(err) != http.StatusBadRequest {
			t.Errorf("put %+v: %v", bad, err)
		}
	}
	// A partial PUT keeps the rest.
	req, _ := http.NewRequest(http.MethodPut, "http://"+bn.APIAddr+"/api/v1/settings", strings.NewReader(`{"soundAlerts":false}`))
	req.Header.Set("Authorization", "Bearer "+bn.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("partial put: %v %v", resp, err)
	}
	resp.Body.Close()
	bn.Close()

	bn = start()
	t.Cleanup(func() { bn.Close() })
	b = client(bn)
	st, err = b.Settings(ctx)
	if err != nil || st.ShowText || st.Language != "fa" || st.SoundAlerts || st.SoundMessages || !st.Muted["group:ab12"].Equal(until) {
		t.Fatalf("after restart: %+v %v", st, err)
	}
	if !bn.set.muted("group", "ab12") || bn.set.muted("chat", "old") {
		t.Error("mutes not applied")
	}

	// Read receipts off, then on: only the second read reaches alice.
	a := client(startNode(t, "alice"))
	inv, err := b.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddContact(ctx, inv.Link, "bob"); err != nil {
		t.Fatal(err)
	}
	st.ReadReceipts = false
	if _, err := b.PutSettings(ctx, st); err != nil {
		t.Fatal(err)
	}
	read := func(text string) apiclient.Message {
		m, err := a.Send(ctx, "bob", text)
		if err != nil {
			t.Fatal(err)
		}
		var seq int64
		poll(t, "bob gets "+text, func() bool {
			conv, err := b.Messages(ctx, "alice", 0)
			if err != nil || len(conv.Messages) == 0 || conv.Messages[len(conv.Messages)-1].Body != text {
				return false
			}
			seq = conv.Messages[len(conv.Messages)-1].Seq
			return true
		})
		if _, err := b.MarkRead(ctx, "alice", seq); err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := read("one")
	st.ReadReceipts = true
	if _, err := b.PutSettings(ctx, st); err != nil {
		t.Fatal(err)
	}
	second := read("two")
	state := func(id string) string {
		conv, _ := a.Messages(ctx, "bob", 0)
		for _, m := range conv.Messages {
			if m.ID == id {
				return m.State
			}
		}
		return ""
	}
	poll(t, "the second message read", func() bool { return state(second.ID) == "read" })
	if s := state(first.ID); s == "read" {
		t.Errorf("a receipt went out while read receipts were off (%s)", s)
	}
}
