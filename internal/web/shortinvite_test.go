package web_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/identity"
)

// TestBrowserShortInvite: the invite dialog shows the short link and its
// QR code (the full link folded away); a pasted short link is added once
// its card is fetched; a cut-off or mistyped link, one whose inviter is offline and
// one leading to another account's card each show their own error and
// add nobody.
func TestBrowserShortInvite(t *testing.T) {
	b := browser(t)
	na, nb := startNode(t, "Alice"), startNode(t, "Bob")
	// Carol goes offline after giving out her link.
	carolDir := filepath.Join(t.TempDir(), "carol")
	if _, err := app.Init(context.Background(), carolDir, "Carol", app.KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	nc, err := app.Start(context.Background(), options(carolDir))
	if err != nil {
		t.Fatal(err)
	}
	var closeCarol sync.Once
	t.Cleanup(func() { closeCarol.Do(func() { nc.Close() }) })
	carolLink, err := nc.Messenger.ShortInvite(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bobLink, err := nb.Messenger.ShortInvite(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Bob's device and secret, Carol's account.
	si, err := identity.ParseShortInvite(bobLink)
	if err != nil {
		t.Fatal(err)
	}
	si.AccountKey = nc.Messenger.Identity().SigningKey()
	mismatch, err := identity.EncodeShortInvite(si)
	if err != nil {
		t.Fatal(err)
	}
	closeCarol.Do(func() { nc.Close() })

	pa := tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS("#invite-btn")),
		chromedp.Click(chromedp.CSS("#invite-btn")))
	waitJS(t, pa, "the invite QR image", `document.querySelector("#invite-qr")?.naturalWidth > 100`)
	short := eval[string](t, pa, `document.querySelector("#invite-link").value`)
	long := eval[string](t, pa, `document.querySelector("#invite-long").value`)
	if !identity.IsShortInvite(short) || len(short) > identity.MaxShortInviteLen || !strings.Contains(long, "?card=") {
		t.Fatalf("invite dialog: short %q, full %.60q…", short, long)
	}
	if _, err := identity.ParseShortInvite(short); err != nil {
		t.Fatalf("the page's short link: %v", err)
	}
	screenshot(t, pa, "short-invite")
	do(t, pa, chromedp.Click(chromedp.CSS("#dlg-close")))

	do(t, pa, chromedp.Click(chromedp.CSS("#add-btn")), chromedp.WaitVisible(chromedp.CSS("#add-link")))
	typo := []byte(bobLink)
	typo[40] = map[bool]byte{true: 'b', false: 'a'}[typo[40] == 'a']
	for _, tc := range []struct{ what, link, says string }{
		{"a cut-off link", bobLink[:len(bobLink)-9], "not a valid samizdat invite"},
		{"a mistyped link", string(typo), "not a valid samizdat invite"},
		{"an offline inviter", carolLink, "their device is not reachable"},
		{"another account's card", mismatch, "belongs to someone else"},
	} {
		eval[bool](t, pa, `(() => { document.querySelector("#add-error").textContent = ""; return true })()`)
		do(t, pa, chromedp.SetValue(chromedp.CSS("#add-link"), tc.link), chromedp.Click(chromedp.CSS("#add-submit")))
		waitJS(t, pa, "the error for "+tc.what, `document.querySelector("#add-error").textContent.includes(`+jsString(tc.says)+`)`)
	}
	if cs, err := na.Messenger.Contacts(context.Background()); err != nil || len(cs) != 0 {
		t.Fatalf("contacts stored from bad links: %+v (%v)", cs, err)
	}
	do(t, pa, chromedp.SetValue(chromedp.CSS("#add-link"), bobLink), chromedp.Click(chromedp.CSS("#add-submit")))
	waitJS(t, pa, "the conversation with Bob", `(document.querySelector("#conv-title") || {}).textContent?.includes("Bob")`)
}

// jsString quotes s as a JavaScript string literal (s has no quotes or
// backslashes).
func jsString(s string) string { return `"` + s + `"` }
