package web_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
)

// TestBrowserRevokedBanner (issue 17): alice links a phone and revokes it
// from her laptop while the phone's page is open: the phone's node gets
// the account-signed list that removes it, and its page says so at once
// ("This device was removed from your account", in all three languages);
// its chats stay, and a send is refused with device_revoked.
func TestBrowserRevokedBanner(t *testing.T) {
	b := browser(t)
	na := startNode(t, "Alice")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "phone")
	links := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		_, err := app.LinkDevice(ctx, app.LinkOptions{
			Dir: dir, Keys: app.KeySource{NoPassphrase: true}, DeviceName: "phone",
			Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, NoHistory: true,
			Show: func(l string) { links <- l }, Confirm: func(string) bool { return true },
		})
		done <- err
	}()
	var link string
	select {
	case link = <-links:
	case err := <-done:
		t.Fatalf("link ended before showing a code: %v", err)
	}
	alice := apiclient.New(na.APIAddr, na.Token)
	st, err := alice.StartLink(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	d, err := alice.ConfirmLink(ctx, st.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	phone := start(t, dir)
	pp := tab(t, b)
	do(t, pp, chromedp.Navigate(phone.LoginURL()), chromedp.WaitVisible(chromedp.CSS("#devices-btn")))
	if eval[bool](t, pp, `!!document.querySelector("#revoked-banner")`) {
		t.Fatal("a banner before the revocation")
	}

	if _, err := alice.RevokeDevice(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	waitJS(t, pp, "the banner", `document.querySelector("#revoked-banner")?.textContent.startsWith("This device was removed from your account")`)
	screenshot(t, pp, "device-removed")
	pc := apiclient.New(phone.APIAddr, phone.Token)
	s, err := pc.Status(ctx)
	if err != nil || s.Revoked == nil || s.Revoked.By != na.P2P.PeerID() {
		t.Fatalf("the phone's status: %+v %v", s.Revoked, err)
	}
	var ae *apiclient.Error
	if _, err := pc.Send(ctx, "nobody", "from the removed phone"); !errors.As(err, &ae) || ae.Code != apiclient.CodeDeviceRevoked {
		t.Fatalf("a send from the removed phone: %v", err)
	}
	// Nor can it revoke the device that removed it.
	if _, err := pc.RevokeDevice(ctx, na.P2P.PeerID()); !errors.As(err, &ae) || ae.Code != apiclient.CodeDeviceRevoked {
		t.Fatalf("the removed phone revokes the laptop: %v", err)
	}
	for lang, want := range map[string]string{"ru": "Это устройство удалено из вашего аккаунта", "fa": "این دستگاه از حساب شما حذف شد"} {
		setLang(t, pp, lang)
		waitJS(t, pp, "the banner in "+lang, `document.querySelector("#revoked-banner")?.textContent.startsWith("`+want+`")`)
	}
	// A reload shows it again (from the status).
	setLang(t, pp, "en")
	do(t, pp, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#devices-btn")))
	waitJS(t, pp, "the banner after a reload", `!!document.querySelector("#revoked-banner")`)
}
