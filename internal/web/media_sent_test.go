package web_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
)

// TestBrowserSentFileStatus: the sender's page says how far a file it sent
// has got. Bob is offline (with no mailbox hosts to leave it with): alice's
// card shows it delivered 0 %; once bob is back and has fetched it from
// her, the bar is gone.
func TestBrowserSentFileStatus(t *testing.T) {
	b := browser(t)
	na := startNode(t, "Alice")
	bobDir := filepath.Join(t.TempDir(), "bob")
	if _, err := app.Init(context.Background(), bobDir, "Bob", app.KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	nb, err := app.Start(context.Background(), options(bobDir))
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
	if _, err := ca.Send(ctx, "Bob", "a file follows"); err != nil {
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
	file := filepath.Join(t.TempDir(), "accounts.bin")
	data := make([]byte, 5*256<<10)
	rand.Read(data)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, pa, chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{file}))
	waitJS(t, pa, "the sender's bar at 0 % while bob is offline",
		`document.querySelector(".msg.out .file-sent")?.textContent === "Delivered 0 %"`)

	nb = start(t, bobDir) // back online: bob fetches the file from alice
	cb = apiclient.New(nb.APIAddr, nb.Token)
	pollAPI(t, "bob to have the whole file", func() bool {
		trs, err := cb.Files(ctx)
		return err == nil && len(trs) == 1 && trs[0].State == "complete"
	})
	waitJS(t, pa, "the sender's note gone once bob has it all",
		`!!document.querySelector(".msg.out .file-card") && !document.querySelector(".msg.out .file-host, .msg.out .file-sent")`)
}
