package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserTwoNodes drives the web app of two real nodes on loopback in
// headless Chromium: onboarding in page A (the node starts without a
// profile), an invalid then a valid invite pasted, a message sent from A,
// shown in B and its tick in A turning to delivered; the node of B
// restarted under its open page; languages switched to Russian and
// Persian (right to left); after a restart the old page is told to reopen
// (the token is fresh per run); a page without a login code, a used or
// made-up code, and a foreign page refused.
func TestBrowserTwoNodes(t *testing.T) {
	b := browser(t)
	urlA, nodeA := waitingNode(t)
	nb := startNode(t, "Bob")
	urlB := nb.LoginURL()

	// Onboarding in page A.
	pa := tab(t, b)
	do(t, pa, chromedp.Navigate(urlA), chromedp.WaitVisible(chromedp.CSS("#ob-name")))
	if h := eval[string](t, pa, `location.hash`); h != "" {
		t.Errorf("the login code stayed in the address bar: %q", h)
	}
	screenshot(t, pa, "onboarding")
	do(t, pa, chromedp.Click(chromedp.CSS("#ob-create")))
	waitJS(t, pa, "the missing-name error", `document.querySelector("#ob-error").textContent.includes("Type a name")`)
	do(t, pa,
		chromedp.SendKeys(chromedp.CSS("#ob-name"), "Alice"),
		chromedp.Click(chromedp.CSS("#ob-nopass")),
		chromedp.Click(chromedp.CSS("#ob-create")),
		chromedp.WaitVisible(chromedp.CSS("#invite-qr")))
	waitJS(t, pa, "the invite QR image", `document.querySelector("#invite-qr").naturalWidth > 100`)
	if link := eval[string](t, pa, `document.querySelector("#invite-link").value`); !strings.HasPrefix(link, "samizdat:") {
		t.Fatalf("invite link in the page = %q", link)
	}
	na := nodeA()
	if na.Messenger.Name() != "Alice" {
		t.Fatalf("node A's name = %q", na.Messenger.Name())
	}
	do(t, pa, chromedp.Click(chromedp.CSS("#ob-continue")), chromedp.WaitVisible(chromedp.CSS("#chatlist")))

	// Page B shows its invite; the user copies the link from it.
	pb := tab(t, b)
	do(t, pb, chromedp.Navigate(urlB), chromedp.WaitVisible(chromedp.CSS("#invite-btn")), chromedp.Click(chromedp.CSS("#invite-btn")))
	waitJS(t, pb, "B's invite link", `(document.querySelector("#invite-link") || {}).value`)
	linkB := eval[string](t, pb, `document.querySelector("#invite-link").value`)
	do(t, pb, chromedp.Click(chromedp.CSS("#dlg-close")))

	// A pastes a broken invite, then B's.
	do(t, pa, chromedp.Click(chromedp.CSS("#add-btn")), chromedp.WaitVisible(chromedp.CSS("#add-link")),
		chromedp.SendKeys(chromedp.CSS("#add-link"), "samizdat:not-an-invite"),
		chromedp.Click(chromedp.CSS("#add-submit")))
	waitJS(t, pa, "the invalid-invite error", `document.querySelector("#add-error").textContent.includes("not a valid samizdat invite")`)
	do(t, pa, chromedp.SetValue(chromedp.CSS("#add-link"), linkB), chromedp.Click(chromedp.CSS("#add-submit")))
	waitJS(t, pa, "the conversation with Bob", `(document.querySelector("#conv-title") || {}).textContent?.includes("Bob")`)
	// Adding him again only refreshes his card: no error, one Bob.
	do(t, pa, chromedp.Click(chromedp.CSS("#add-btn")), chromedp.WaitVisible(chromedp.CSS("#add-link")),
		chromedp.SetValue(chromedp.CSS("#add-link"), linkB), chromedp.SetValue(chromedp.CSS("#add-name"), "Bob"),
		chromedp.Click(chromedp.CSS("#add-submit")))
	waitJS(t, pa, "Bob added again", `!document.querySelector("#dlg").open`)
	if n := eval[int](t, pa, `document.querySelectorAll('.chat[data-name="Bob"]').length`); n != 1 {
		t.Errorf("%d chats named Bob after adding him again, want 1", n)
	}

	// A sends; B sees it live; A's tick turns to delivered.
	do(t, pa, chromedp.SendKeys(chromedp.CSS("#text"), "Hello Bob, it works"), chromedp.Click(chromedp.CSS("#send")))
	waitJS(t, pa, "the sent message", `document.querySelector(".msg.out .body")?.textContent === "Hello Bob, it works"`)
	if v := eval[string](t, pa, `document.querySelector("#text").value`); v != "" {
		t.Errorf("composer not cleared after sending: %q", v)
	}
	waitJS(t, pb, "Alice's chat with one unread message in B's list",
		`document.querySelector('.chat[data-name="Alice"] .badge')?.textContent === "1"`)
	waitJS(t, pa, "the delivered tick in A", `document.querySelector(".msg.out .tick")?.dataset.state === "delivered"`)
	click(t, pb, `.chat[data-name="Alice"]`) // the list is drawn again at each receipt
	waitJS(t, pb, "the message in B", `document.querySelector(".msg.in .body")?.textContent === "Hello Bob, it works"`)
	waitJS(t, pb, "the unread badge cleared", `!document.querySelector('.chat[data-name="Alice"] .badge')`)
	if n := eval[int](t, pb, `document.querySelectorAll(".day").length`); n != 1 {
		t.Errorf("day separators in B = %d, want 1", n)
	}

	// B answers with the keyboard only (Enter sends).
	do(t, pb, chromedp.SendKeys(chromedp.CSS("#text"), "Hi Alice!\r"))
	waitJS(t, pa, "B's answer in A", `[...document.querySelectorAll(".msg.in .body")].some(e => e.textContent === "Hi Alice!")`)
	screenshot(t, pa, "conversation")

	// A message over the size limit: a clear error, the text kept.
	eval[bool](t, pa, `(() => { document.querySelector("#text").value = "x".repeat(70000); return true })()`)
	do(t, pa, chromedp.Click(chromedp.CSS("#send")))
	waitJS(t, pa, "the too-long error", `document.querySelector("#toast").textContent.includes("too long")`)
	if n := eval[int](t, pa, `document.querySelector("#text").value.length`); n != 70000 {
		t.Errorf("the composer holds %d characters after the refused send, want 70000", n)
	}
	eval[bool](t, pa, `(() => { document.querySelector("#text").value = ""; return true })()`)

	// Search across chats.
	do(t, pa, chromedp.SendKeys(chromedp.CSS("#q"), "works"))
	waitJS(t, pa, "a search hit", `document.querySelector(".chat.hit")?.textContent.includes("Hello Bob")`)
	eval[bool](t, pa, `(() => { const q = document.querySelector("#q"); q.value = ""; q.dispatchEvent(new Event("input")); return true })()`)
	waitJS(t, pa, "the chat list again", `!!document.querySelector('.chat[data-name="Bob"]')`)

	// Safety number and verification.
	do(t, pa, chromedp.Click(chromedp.CSS("#conv-title")), chromedp.WaitVisible(chromedp.CSS("#safety")))
	sn := eval[string](t, pa, `document.querySelector("#safety").textContent`)
	if c, _ := na.Messenger.Contact(t.Context(), "Bob"); sn == "" || sn != c.SafetyNumber {
		t.Errorf("safety number in the page %q, node says %q", sn, c.SafetyNumber)
	}
	do(t, pa, chromedp.Click(chromedp.CSS("#verify-btn")))
	waitJS(t, pa, "verified shown", `document.querySelector("#conv-title small").textContent === "Verified"`)

	// Connectivity in plain words.
	do(t, pa, chromedp.Click(chromedp.CSS("#conn-btn")), chromedp.WaitVisible(chromedp.CSS("#conn-overall")))
	if s := eval[string](t, pa, `document.querySelector("#conn-contacts li").dataset.link`); s != "direct" {
		t.Errorf("Bob's link = %q, want direct", s)
	}
	if s := eval[string](t, pa, `(document.querySelector("#conn-mesh p") || {}).textContent || ""`); !strings.Contains(s, "carrying 0 messages") {
		t.Errorf("mesh mode in the connectivity panel: %q", s)
	}
	screenshot(t, pa, "connectivity")
	do(t, pa, chromedp.Click(chromedp.CSS("#dlg-close")))

	// A phone-sized window: one pane at a time, a back button.
	do(t, pa, chromedp.EmulateViewport(390, 760))
	waitJS(t, pa, "the back button", `getComputedStyle(document.querySelector("#back")).display !== "none"`)
	do(t, pa, chromedp.Click(chromedp.CSS("#back")))
	waitJS(t, pa, "the chat list alone", `getComputedStyle(document.querySelector("#conv")).display === "none"`)
	screenshot(t, pa, "chats-phone")
	click(t, pa, `.chat[data-name="Bob"]`)
	waitJS(t, pa, "the conversation alone", `getComputedStyle(document.querySelector(".side")).display === "none"`)
	do(t, pa, chromedp.KeyEvent("\x1b")) // Escape: back to the list, focus on the chat
	waitJS(t, pa, "the list after Escape", `document.activeElement?.dataset?.name === "Bob"`)
	do(t, pa, chromedp.KeyEvent("\r")) // Enter on the focused chat opens it
	waitJS(t, pa, "the conversation again", `getComputedStyle(document.querySelector(".side")).display === "none"`)
	do(t, pa, chromedp.EmulateViewport(1000, 700))

	// Node B restarts under its open page: same address, a fresh token, so
	// the page asks to be opened again; the new address shows what arrived
	// meanwhile.
	dirB := nb.Dir
	nb.Close()
	waitJS(t, pb, "the reconnecting banner", `!document.querySelector("#banner").hidden`)
	do(t, pa, chromedp.SendKeys(chromedp.CSS("#text"), "sent while you restarted\r"))
	nb2 := start(t, dirB)
	if nb2.APIAddr != nb.APIAddr || nb2.Token == nb.Token {
		t.Errorf("the restarted node: %s → %s, token kept: %v", nb.APIAddr, nb2.APIAddr, nb2.Token == nb.Token)
	}
	waitJS(t, pb, "the page told to reopen", `document.querySelector("#fatal")?.textContent.includes("samizdat restarted")`)
	do(t, pb, chromedp.Navigate("about:blank"), chromedp.Navigate(nb2.LoginURL()), chromedp.WaitVisible(chromedp.CSS(`.chat[data-name="Alice"]`)))
	// Clicked in the page (the list may be drawn again between finding
	// the row and clicking it: the restarted node's news re-render it).
	click(t, pb, `.chat[data-name="Alice"]`)
	waitJS(t, pb, "the message sent during the restart", `[...document.querySelectorAll(".msg.in .body")].some(e => e.textContent === "sent while you restarted")`)

	// Languages: Russian, then Persian laid out right to left.
	setLang(t, pa, "ru")
	waitJS(t, pa, "Russian", `document.documentElement.lang === "ru" && document.querySelector("#send").textContent === "Отправить"`)
	if d := eval[string](t, pa, `document.documentElement.dir`); d != "ltr" {
		t.Errorf("Russian dir = %q", d)
	}
	setLang(t, pa, "fa")
	waitJS(t, pa, "Persian", `document.documentElement.lang === "fa" && document.querySelector("#send").textContent === "ارسال"`)
	if d := eval[string](t, pa, `document.documentElement.dir`); d != "rtl" {
		t.Errorf("Persian dir = %q", d)
	}
	if !eval[bool](t, pa, `document.querySelector(".side").getBoundingClientRect().left > document.querySelector(".conv").getBoundingClientRect().left`) {
		t.Error("in Persian the chat list is not on the right")
	}
	screenshot(t, pa, "persian-rtl")
	setLang(t, pa, "en")

	// A page without a login code, one with a code already used, one
	// with a made-up code.
	host := na.APIAddr
	pc := tab(t, b)
	do(t, pc, chromedp.Navigate("http://"+host+"/"), chromedp.WaitVisible(chromedp.CSS("#fatal")))
	if s := eval[string](t, pc, `document.querySelector("#fatal").textContent`); !strings.Contains(s, "samizdat open") {
		t.Errorf("no-token page says %q", s)
	}
	for _, u := range []string{urlA, "http://" + host + "/#login=" + strings.Repeat("0", 32)} {
		do(t, pc, chromedp.Navigate("about:blank"), chromedp.Navigate(u))
		waitJS(t, pc, "the used-code message", `document.querySelector("#fatal")?.textContent.includes("already used")`)
	}

	// Page B (another origin) cannot use A's API, even holding its token.
	res := eval[string](t, pb, `fetch("http://`+host+`/api/v1/status", {headers: {Authorization: "Bearer `+na.Token+`"}}).then(r => "status " + r.status, e => "refused")`)
	if res != "refused" {
		t.Errorf("cross-origin fetch with the token: %s", res)
	}
	res = eval[string](t, pb, `new Promise(ok => { const ws = new WebSocket("ws://`+host+`/api/v1/events", ["samizdat.v1", "samizdat.bearer.`+na.Token+`"]); ws.onopen = () => ok("open"); ws.onerror = () => ok("refused") })`)
	if res != "refused" {
		t.Errorf("cross-origin WebSocket: %s", res)
	}
	// What such a request is told.
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/api/v1/status", nil)
	req.Header.Set("Origin", "http://"+nb2.APIAddr)
	req.Header.Set("Authorization", "Bearer "+na.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Code, Error string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 403 || e.Code != "forbidden" || e.Error == "" {
		t.Errorf("foreign origin: %d %+v", resp.StatusCode, e)
	}
	// A rebinding attack: the right token but a foreign Host.
	req, _ = http.NewRequest(http.MethodGet, "http://"+host+"/api/v1/status", nil)
	req.Host = "evil.example:" + host[strings.LastIndex(host, ":")+1:]
	req.Header.Set("Authorization", "Bearer "+na.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("foreign Host: %v %v", err, resp.StatusCode)
	} else {
		resp.Body.Close()
	}
}
