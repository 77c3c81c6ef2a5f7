package web_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// TestBrowserLinkDevice: in the devices dialog, alice pastes the link code
// a new device shows; the page shows the same short code as the new
// device, and once confirmed the new device is in the list (version 1) and
// holds alice's account. The "copy the chat history" box is ticked by
// default; unticked, no history is offered to the device. A second use of
// the same code is refused with a message.
func TestBrowserLinkDevice(t *testing.T) {
	b := browser(t)
	na := startNode(t, "Alice")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	links, codes := make(chan string, 1), make(chan string, 1)
	type result struct {
		acct string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		acct, err := app.LinkDevice(ctx, app.LinkOptions{
			Dir: filepath.Join(t.TempDir(), "phone"), Keys: app.KeySource{NoPassphrase: true}, DeviceName: "phone",
			Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true,
			Show:    func(l string) { links <- l },
			Confirm: func(code string) bool { codes <- code; return true },
		})
		done <- result{acct, err}
	}()
	var link string
	select {
	case link = <-links:
	case r := <-done:
		t.Fatalf("link ended before showing a code: %v", r.err)
	}

	pa := tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS("#devices-btn")),
		chromedp.Click(chromedp.CSS("#devices-btn")), chromedp.WaitVisible(chromedp.CSS("#link-code")))
	waitJS(t, pa, "this device in the list", `document.querySelectorAll("#device-list li[data-device]").length === 1`)
	if !eval[bool](t, pa, `document.querySelector("#link-history").checked`) {
		t.Fatal("the history box is not ticked by default")
	}
	do(t, pa, chromedp.Click(chromedp.CSS("#link-history")))
	do(t, pa, chromedp.SetValue(chromedp.CSS("#link-code"), link), chromedp.Click(chromedp.CSS("#link-submit")))
	waitJS(t, pa, "the short code", `document.querySelector("#link-sas")?.textContent.length === 7`)
	shown := eval[string](t, pa, `document.querySelector("#link-sas").textContent`)
	var newCode string
	select {
	case newCode = <-codes:
	case <-ctx.Done():
		t.Fatal("the new device showed no code")
	}
	if shown != newCode {
		t.Fatalf("the page shows %q, the new device %q", shown, newCode)
	}
	screenshot(t, pa, "link-device")
	do(t, pa, chromedp.Click(chromedp.CSS("#link-yes")))
	r := <-done
	if r.err != nil || r.acct != na.Messenger.AccountID() {
		t.Fatalf("new device: account %q, %v", r.acct, r.err)
	}
	waitJS(t, pa, "the new device in the list", `document.querySelector("#device-list").dataset.version === "1" &&
		[...document.querySelectorAll("#device-list li")].some((li) => li.textContent.includes("phone"))`)
	if hs, err := na.Messenger.History(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("history offered though the box was unticked: %+v %v", hs, err)
	}
	// A history offered after all (the phone is not running: it waits)
	// shows in the phone's row.
	phoneID := eval[string](t, pa, `[...document.querySelectorAll("#device-list li")].find((li) => li.textContent.includes("phone")).dataset.device`)
	if err := na.Messenger.SendHistory(ctx, phoneID); err != nil {
		t.Fatal(err)
	}
	do(t, pa, chromedp.Click(chromedp.CSS("#dlg-close")), chromedp.Click(chromedp.CSS("#devices-btn")))
	waitJS(t, pa, "the history in the phone's row", `(() => {
		const li = document.querySelector('#device-list li[data-device="`+phoneID+`"]');
		return !!li && !!li.querySelector("[data-history]") && li.textContent.includes("Chat history");
	})()`)
	// The code again: refused, with the reason (the new device no longer
	// waits).
	do(t, pa, chromedp.SetValue(chromedp.CSS("#link-code"), link), chromedp.Click(chromedp.CSS("#link-submit")))
	waitJS(t, pa, "the refusal", `document.querySelector("#link-error").textContent.includes("cannot reach the new device")`)

	// The phone is listed with its last sighting; it is offline (its
	// node stopped after linking) and alice revokes it from the page:
	// the button asks once more, then the list shows it revoked under a
	// new version.
	phone := `[...document.querySelectorAll("#device-list li[data-device]")].find((li) => li.textContent.includes("phone"))`
	// (Its state line is empty unless it has a last sighting.)
	if seen := eval[string](t, pa, phone+`.querySelector(".muted").textContent`); seen == "" {
		t.Fatalf("the phone's row shows no last sighting: %q", eval[string](t, pa, phone+`.textContent`))
	}
	label := eval[string](t, pa, phone+`.querySelector("button.revoke").textContent`)
	eval[bool](t, pa, `(`+phone+`.querySelector("button.revoke").click(), true)`)
	waitJS(t, pa, "the revoke button asks again", phone+`.querySelector("button.revoke").textContent !== `+strconv.Quote(label))
	eval[bool](t, pa, `(`+phone+`.querySelector("button.revoke").click(), true)`)
	waitJS(t, pa, "the phone revoked", `document.querySelector("#device-list").dataset.version === "2" && `+phone+`.dataset.revoked === "1" && !`+phone+`.querySelector("button.revoke")`)
	screenshot(t, pa, "device-revoked")
	ds, err := apiclient.New(na.APIAddr, na.Token).Devices(ctx)
	if err != nil || ds.Version != 2 || len(ds.Devices) != 2 || !ds.Devices[1].Revoked {
		t.Fatalf("alice's devices after revoking from the page: %+v %v", ds, err)
	}
}

// TestBrowserLinkThisDevice: a new device's web app (no profile yet)
// shows a link code and its QR image; alice's node accepts the code, both
// show the same short code, the page confirms, and the node starts as
// alice's account with her contacts; ticked "do not copy the chat
// history", the phone refuses the history alice offers. A contact renamed on its page is
// renamed on her first device; one deleted there closes its chat here.
func TestBrowserLinkThisDevice(t *testing.T) {
	b := browser(t)
	na, nb := startNode(t, "Alice"), startNode(t, "Bob")
	ctx := context.Background()
	bobLink, err := nb.Messenger.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := na.Messenger.AddContact(ctx, bobLink, ""); err != nil {
		t.Fatal(err)
	}
	url, node := waitingNode(t)
	pn := tab(t, b)
	do(t, pn, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#ob-link")), chromedp.Click(chromedp.CSS("#ob-link")),
		chromedp.WaitVisible(chromedp.CSS("#lt-name")), chromedp.SetValue(chromedp.CSS("#lt-name"), "phone"),
		chromedp.Click(chromedp.CSS("#lt-nopass")))
	if eval[bool](t, pn, `document.querySelector("#lt-nohistory").checked`) {
		t.Fatal("the no-history box is ticked by default")
	}
	do(t, pn, chromedp.Click(chromedp.CSS("#lt-nohistory")), chromedp.Click(chromedp.CSS("#lt-start")))
	waitJS(t, pn, "the link code's QR image", `document.querySelector("#lt-qr")?.naturalWidth > 100`)
	link := eval[string](t, pn, `document.querySelector("#lt-link").value`)
	screenshot(t, pn, "link-this-device")

	alice := apiclient.New(na.APIAddr, na.Token)
	st, err := alice.StartLink(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, pn, "the short code", `document.querySelector("#lt-code")?.textContent.length === 7`)
	if shown := eval[string](t, pn, `document.querySelector("#lt-code").textContent`); shown != st.Code {
		t.Fatalf("the page shows %q, alice's node %q", shown, st.Code)
	}
	do(t, pn, chromedp.Click(chromedp.CSS("#lt-yes")))
	d, err := alice.ConfirmLink(ctx, st.ID, true)
	if err != nil || d.Name != "phone" {
		t.Fatalf("confirm: %+v %v", d, err)
	}
	n := node()
	if n.Messenger.AccountID() != na.Messenger.AccountID() {
		t.Fatal("the linked node is another account")
	}
	if cs, err := n.Messenger.Contacts(ctx); err != nil || len(cs) != 1 || cs[0].AccountID != nb.Messenger.AccountID() {
		t.Fatalf("the linked node's contacts: %+v %v", cs, err)
	}
	// Linked with "do not copy the chat history": the history alice's
	// node offers (ConfirmLink offers it) is refused.
	pollAPI(t, "alice's history offer refused by the phone", func() bool {
		hs, err := na.Messenger.History(ctx)
		return err == nil && len(hs) == 1 && hs[0].State == messenger.HistoryRefused
	})
	// The page reloads and starts over as alice (evaluations fail while
	// it navigates: tried again).
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, cancel := context.WithTimeout(pn, time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](`!!document.querySelector("#devices-btn")`))
		cancel()
		if err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page did not start as alice: %v\npage: %s", err, pageText(pn))
		}
		time.Sleep(100 * time.Millisecond) // polling the page across its reload
	}

	// The linked device's page renames Bob: alice's first device has the
	// name too. Alice deletes him there: the phone's open chat with him
	// closes, and he is gone from its list and its node.
	bob := nb.Messenger.AccountID()
	click(t, pn, `.chat[data-account="`+bob+`"]`)
	click(t, pn, "#conv-title")
	do(t, pn, chromedp.WaitVisible(chromedp.CSS("#ct-name")), chromedp.SetValue(chromedp.CSS("#ct-name"), "Bob B"),
		chromedp.Click(chromedp.CSS("#ct-rename")))
	waitJS(t, pn, "the renamed header", `!document.querySelector("#dlg").open && document.querySelector("#conv-title")?.textContent.includes("Bob B")`)
	pollAPI(t, "the rename on alice's first device", func() bool {
		c, err := na.Messenger.Contact(ctx, bob)
		return err == nil && c.Name == "Bob B"
	})
	if err := alice.DeleteContact(ctx, bob); err != nil {
		t.Fatal(err)
	}
	waitJS(t, pn, "Bob's chat closed on the phone", `document.querySelector('.chat[data-account="`+bob+`"]') === null &&
		document.querySelector("#composer").hidden && document.querySelector("#toast").textContent.includes("deleted on another of your devices")`)
	if cs, err := n.Messenger.Contacts(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("the phone's contacts after alice deleted Bob: %+v %v", cs, err)
	}
}
