package web_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/mailbox"
)

// TestBrowserSentFileHostNotes (issue 16, offline): bob is offline and
// names a mailbox host with room for 8 blobs. A small file alice sends him
// from her page is left with that host, and her card says so; a larger
// one is over the host's quota, and her card says it waits with her until
// bob is online. Bob, back, gets both.
func TestBrowserSentFileHostNotes(t *testing.T) {
	b := browser(t)
	relayCtx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	relay, err := app.StartRelay(relayCtx, app.RelayOptions{Dir: filepath.Join(t.TempDir(), "relay"),
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true,
		Mailbox: app.MailboxOptions{BlobQuotas: mailbox.Quotas{PerMailbox: 8 * mailbox.BlobSize}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	hosts, err := app.ParseMailboxHosts(relay.Addrs())
	if err != nil {
		t.Fatal(err)
	}

	aliceDir := filepath.Join(t.TempDir(), "alice")
	if _, err := app.Init(context.Background(), aliceDir, "Alice", app.KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	oa := options(aliceDir)
	oa.Messenger.FetchInterval = 200 * time.Millisecond // the deposit loop
	na, err := app.Start(context.Background(), oa)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { na.Close() })
	bobDir := filepath.Join(t.TempDir(), "bob")
	if _, err := app.Init(context.Background(), bobDir, "Bob", app.KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	bobOpts := func() app.Options {
		o := options(bobDir)
		o.Messenger.MailboxHosts = hosts
		o.Messenger.FetchInterval = 200 * time.Millisecond
		return o
	}
	nb, err := app.Start(context.Background(), bobOpts())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ca, cb := apiclient.New(na.APIAddr, na.Token), apiclient.New(nb.APIAddr, nb.Token)
	inv, err := cb.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddContact(ctx, inv.Link, "Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Send(ctx, "Bob", "files follow"); err != nil {
		t.Fatal(err)
	}
	pollAPI(t, "bob to have alice's message", func() bool {
		conv, err := cb.Messages(ctx, "Alice", 0)
		return err == nil && len(conv.Messages) == 1
	})
	nb.Close() // bob goes offline

	pa := tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS(`.chat[data-name="Bob"]`)))
	click(t, pa, `.chat[data-name="Bob"]`)
	send := func(name string, size int) {
		t.Helper()
		p := filepath.Join(t.TempDir(), name)
		data := make([]byte, size)
		rand.Read(data)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		do(t, pa, chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{p}))
	}
	note := func(name string) string {
		return `[...document.querySelectorAll(".msg.out")].find((m) => m.querySelector(".file-name")?.textContent === "` + name + `")?.querySelector(".file-host")?.textContent`
	}
	// 2 data chunks and the index: 3 blobs, within the quota.
	send("small.bin", 300<<10)
	waitJS(t, pa, "the small file's card: left with bob's host",
		note("small.bin")+` === "Left with the recipient's mailbox hosts"`)
	// 12 data chunks and the index: 13 blobs, over it.
	send("large.bin", 3<<20)
	waitJS(t, pa, "the large file's card: it waits here",
		note("large.bin")+` === "Too large for the recipient's mailbox hosts: it waits here until they are online"`)
	trs, err := ca.Files(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, tr := range trs {
		states[tr.Name] = tr.HostState
	}
	if states["small.bin"] != "deposited" || states["large.bin"] != "over-quota" {
		t.Fatalf("alice's transfers: %+v", trs)
	}
	setLang(t, pa, "ru")
	waitJS(t, pa, "the note in Russian", note("large.bin")+`?.startsWith("Слишком большой")`)
	setLang(t, pa, "en")

	nb, err = app.Start(context.Background(), bobOpts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nb.Close() })
	cb = apiclient.New(nb.APIAddr, nb.Token)
	pollAPI(t, "bob to have both files", func() bool {
		trs, err := cb.Files(ctx)
		if err != nil || len(trs) != 2 {
			return false
		}
		for _, tr := range trs {
			if tr.State != "complete" {
				return false
			}
		}
		return true
	})
	waitJS(t, pa, "the large file's note gone once bob fetched it from alice", `!`+note("large.bin"))
}

// TestBrowserGroupFileHolders (issue 16, offline in groups): carol is
// offline when alice sends a file to their group from her page. Alice's
// card says one of the two members has it and that it waits for the one
// offline; once carol is back and has fetched it, that every member has
// it.
func TestBrowserGroupFileHolders(t *testing.T) {
	b := browser(t)
	aliceDir := filepath.Join(t.TempDir(), "alice")
	if _, err := app.Init(context.Background(), aliceDir, "Alice", app.KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	oa := options(aliceDir)
	oa.Messenger.FetchInterval = 200 * time.Millisecond // how often the members are asked
	na, err := app.Start(context.Background(), oa)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { na.Close() })
	nb := startNode(t, "Bob")
	carolDir := filepath.Join(t.TempDir(), "carol")
	if _, err := app.Init(context.Background(), carolDir, "Carol", app.KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	nc, err := app.Start(context.Background(), options(carolDir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ca, cb, cc := apiclient.New(na.APIAddr, na.Token), apiclient.New(nb.APIAddr, nb.Token), apiclient.New(nc.APIAddr, nc.Token)
	for name, c := range map[string]*apiclient.Client{"Bob": cb, "Carol": cc} {
		inv, err := c.Invite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.AddContact(ctx, inv.Link, name); err != nil {
			t.Fatal(err)
		}
	}
	g, err := ca.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.GroupInvite(ctx, g.ID, "Bob", "Carol"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*apiclient.Client{cb, cc} {
		pollAPI(t, "the member to join", func() bool {
			_, err := c.GroupJoin(ctx, g.ID)
			return err == nil
		})
	}
	for _, c := range []*apiclient.Client{ca, cb, cc} {
		pollAPI(t, "every member to see three", func() bool {
			gi, err := c.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3
		})
	}
	// Sender keys both ways before the file: each member says hello.
	for i, c := range []*apiclient.Client{cb, cc} {
		text := []string{"hello from bob", "hello from carol"}[i]
		if _, err := c.GroupSend(ctx, g.ID, text); err != nil {
			t.Fatal(err)
		}
		pollAPI(t, "alice to read "+text, func() bool {
			conv, err := ca.GroupMessages(ctx, g.ID, 0)
			if err != nil {
				return false
			}
			for _, m := range conv.Messages {
				if m.Text == text {
					return true
				}
			}
			return false
		})
	}
	nc.Close() // carol goes offline

	pa := tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS(`.chat[data-name="Family"]`)))
	click(t, pa, `.chat[data-name="Family"]`)
	waitJS(t, pa, "the group's composer", `!document.querySelector("#composer").hidden && !document.querySelector("#attach-btn").hidden`)
	p := filepath.Join(t.TempDir(), "album.bin")
	data := make([]byte, 3*256<<10)
	rand.Read(data)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, pa, chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{p}))
	const holders = `document.querySelector(".msg.out .file-holders")?.textContent`
	waitJS(t, pa, "alice's card: bob has it, it waits for carol",
		holders+` === "1 of 2 members have it · 1 offline: it waits for them here and with the members who have it"`)
	setLang(t, pa, "fa")
	waitJS(t, pa, "the note in Persian", holders+`?.startsWith("۱ از ۲ عضو")`)
	setLang(t, pa, "en")

	nc, err = app.Start(context.Background(), options(carolDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	cc = apiclient.New(nc.APIAddr, nc.Token)
	pollAPI(t, "carol to have the file", func() bool {
		trs, err := cc.Files(ctx)
		return err == nil && len(trs) == 1 && trs[0].State == "complete"
	})
	waitJS(t, pa, "alice's card: every member has it", holders+` === "All 2 members have it"`)
	trs, err := ca.Files(ctx)
	if err != nil || len(trs) != 1 || trs[0].Holders == nil || *trs[0].Holders != (apiclient.FileHolders{Members: 2, Done: 2}) {
		t.Fatalf("alice's transfer: %+v (%v)", trs, err)
	}
}
