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
)

// TestBrowserSentCopyFile (issue 17): a file alice sends bob from her
// laptop shows in her phone's web app as sent, in the chat with bob, with
// its save button once the phone has fetched it; the page serves it.
func TestBrowserSentCopyFile(t *testing.T) {
	b := browser(t)
	na, nb := startNode(t, "Alice"), startNode(t, "Bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ca, cb := apiclient.New(na.APIAddr, na.Token), apiclient.New(nb.APIAddr, nb.Token)
	inv, err := cb.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddContact(ctx, inv.Link, "Bob"); err != nil {
		t.Fatal(err)
	}

	phoneDir := filepath.Join(t.TempDir(), "phone")
	links, done := make(chan string, 1), make(chan error, 1)
	go func() {
		_, err := app.LinkDevice(ctx, app.LinkOptions{
			Dir: phoneDir, Keys: app.KeySource{NoPassphrase: true}, DeviceName: "phone",
			Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true,
			Show:    func(l string) { links <- l },
			Confirm: func(string) bool { return true },
		})
		done <- err
	}()
	var link string
	select {
	case link = <-links:
	case err := <-done:
		t.Fatalf("link ended before showing a code: %v", err)
	}
	st, err := ca.StartLink(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.ConfirmLink(ctx, st.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	np := start(t, phoneDir)

	file := filepath.Join(t.TempDir(), "minutes.bin")
	data := make([]byte, 600<<10)
	rand.Read(data)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	msg, err := ca.SendFile(ctx, "Bob", file, "the minutes")
	if err != nil {
		t.Fatal(err)
	}
	pp := tab(t, b)
	do(t, pp, chromedp.Navigate(np.LoginURL()), chromedp.WaitVisible(chromedp.CSS(`.chat[data-name="Bob"]`)))
	click(t, pp, `.chat[data-name="Bob"]`)
	waitJS(t, pp, "the sent file's card on the phone, with its save button",
		`document.querySelector(".msg.out .file-name")?.textContent === "minutes.bin" && !!document.querySelector(".msg.out .save-file")`)
	screenshot(t, pp, "sent-copy-file")
	// The card's save button shows while the phone still fetches; the
	// fetch completes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		fs, err := apiclient.New(np.APIAddr, np.Token).Files(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var tr *apiclient.Transfer
		for i := range fs {
			if fs[i].MessageID == msg.ID {
				tr = &fs[i]
			}
		}
		if tr != nil && tr.State == "complete" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the phone's transfer: %+v", tr)
		}
		time.Sleep(50 * time.Millisecond) // polling the node
	}
}
