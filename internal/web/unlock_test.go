package web_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/app"
)

// TestBrowserUnlock starts a node on a passphrase profile without the
// passphrase: the page asks for it, refuses a wrong one and opens the
// app with the right one.
func TestBrowserUnlock(t *testing.T) {
	b := browser(t)
	dir := filepath.Join(t.TempDir(), "locked")
	if _, err := app.Init(context.Background(), dir, "Carol", app.KeySource{Passphrase: "open sesame"}); err != nil {
		t.Fatal(err)
	}
	url, node := waitingNodeIn(t, dir)
	p := tab(t, b)
	do(t, p, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#unlock-pass")),
		chromedp.SendKeys(chromedp.CSS("#unlock-pass"), "open sesame?\r"))
	waitJS(t, p, "the wrong-passphrase error", `document.querySelector("#unlock-error").textContent === "Wrong passphrase."`)
	do(t, p, chromedp.SetValue(chromedp.CSS("#unlock-pass"), "open sesame"), chromedp.Click(chromedp.CSS(`#unlock button[type=submit]`)))
	waitJS(t, p, "the app", `document.querySelector(".me")?.textContent === "Carol"`)
	if n := node(); n.Messenger.Name() != "Carol" {
		t.Fatalf("node name %q", n.Messenger.Name())
	}
}
