package web_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// watchNotifications makes the page report itself hidden or shown at
// will (window.__hidden) and records every Notification it creates in
// window.__notes, before any of the app's scripts run.
const watchNotifications = `
window.__hidden = false;
window.__notes = [];
window.__errors = [];
addEventListener("error", (e) => window.__errors.push(String(e.message)));
addEventListener("unhandledrejection", (e) => window.__errors.push(String(e.reason && e.reason.stack || e.reason)));
Object.defineProperty(document, "hidden", { get: () => window.__hidden });
Object.defineProperty(document, "visibilityState", { get: () => window.__hidden ? "hidden" : "visible" });
document.hasFocus = () => !window.__hidden;
const Real = window.Notification;
window.__asked = 0;
const ask = Real.requestPermission.bind(Real);
Real.requestPermission = (...a) => { window.__asked++; return ask(...a); };
window.Notification = class extends Real {
  constructor(title, o) {
    const rec = { title, body: o && o.body, tag: o && o.tag, requireInteraction: !!(o && o.requireInteraction) };
    window.__notes.push(rec);
    super(title, o);
    rec.n = this;
  }
};`

// notifying serialises the tests that make system notifications: in the
// one shared headless Chromium, a notification shown by one page stalled
// another page's (TestBrowserNotifications missed its group notification
// in 3 of 7 runs beside TestBrowserRequestNotification; with the latter's
// Notification call removed, 5 of 5 passed).
var notifying sync.Mutex

// notifyAlone makes the test the only one showing notifications until it
// ends.
func notifyAlone(t *testing.T) {
	notifying.Lock()
	t.Cleanup(notifying.Unlock)
}

// grantNotifications grants the app's origin the notification permission
// through the DevTools protocol and installs watchNotifications.
func grantNotifications(origin string) chromedp.Action[chromedp.Void] {
	return setNotifications(origin, cdpbrowser.PermissionSettingGranted)
}

func setNotifications(origin string, setting cdpbrowser.PermissionSetting) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: setting, Origin: origin}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchNotifications})
		return err
	})
}

// TestBrowserNotifications: with B's page hidden, A's message makes
// exactly one system notification on B, without the text when B's
// settings say so, and the tab's title counts it; a group message makes
// one with the sender's name; an alert post makes an
// urgent notification (requireInteraction) and starts the siren (the
// page's AudioContext runs); clicking it opens the channel; a muted chat
// makes no notification and no sound while alerts still notify (the siren
// switched off: silently); the language kept by the
// node is the page's; then notificationsDenied.
func TestBrowserNotifications(t *testing.T) {
	b := browser(t)
	notifyAlone(t)
	na, nb := startNode(t, "Alice"), startNode(t, "Bob")
	ctx := t.Context()
	ca, cb := apiclient.New(na.APIAddr, na.Token), apiclient.New(nb.APIAddr, nb.Token)
	inv, err := cb.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddContact(ctx, inv.Link, "Bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Send(ctx, "Bob", "hi Bob"); err != nil {
		t.Fatal(err)
	}
	pb := tab(t, b)
	do(t, pb, grantNotifications("http://"+nb.APIAddr), chromedp.Navigate(nb.LoginURL()),
		chromedp.WaitVisible(chromedp.CSS("#settings-btn")))
	waitJS(t, pb, "Alice in B's list", `!!document.querySelector('.chat[data-name="Alice"]')`)
	waitJS(t, pb, "the unread count in the title", `document.title === "(1) samizdat"`)

	// B's settings: notifications granted, only "New message" shown.
	click(t, pb, "#settings-btn")
	waitJS(t, pb, "the settings screen", `!!document.querySelector("#dlg[open] #notify-on") && document.querySelector("#set-showText").checked`)
	screenshot(t, pb, "settings")
	click(t, pb, "#set-showText")
	waitJS(t, pb, "the privacy setting saved", `document.querySelector("#set-showText").checked === false`)
	pollAPI(t, "showText off on the node", func() bool { s, err := cb.Settings(ctx); return err == nil && !s.ShowText })
	click(t, pb, "#dlg-close")

	// B's page hidden: A's message makes one notification, without its text.
	eval[bool](t, pb, `(() => { window.__hidden = true; return true })()`)
	handled := eval[int](t, pb, `window.samizdatNotify.handled`)
	if _, err := ca.Send(ctx, "Bob", "the secret plan"); err != nil {
		t.Fatal(err)
	}
	waitJS(t, pb, "a notification of A's message", `window.__notes.length === 1`)
	note := eval[map[string]any](t, pb, `(() => { const n = window.__notes[0]; return { title: n.title, body: n.body, tag: n.tag, ri: n.requireInteraction } })()`)
	if note["title"] != "Alice" || strings.Contains(note["body"].(string), "secret") || !strings.Contains(note["body"].(string), "New message") || note["ri"] != false {
		t.Errorf("message notification: %v", note)
	}
	waitJS(t, pb, "the event handled", `window.samizdatNotify.handled > `+itoa(handled))
	if n := eval[int](t, pb, `window.__notes.length`); n != 1 {
		t.Errorf("one message made %d notifications", n)
	}
	waitJS(t, pb, "two unread in the title", `document.title === "(2) samizdat"`)
	waitJS(t, pb, "the count on the favicon and the message sound",
		`document.querySelector("link[rel=icon]").href.startsWith("data:image/png") && window.samizdatSound.last === "message"`)

	// A group message, page still hidden: the sender's name, not the text.
	g, err := ca.CreateGroup(ctx, "Team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.GroupInvite(ctx, g.ID, "Bob"); err != nil {
		t.Fatal(err)
	}
	pollAPI(t, "B invited", func() bool { gs, err := cb.Groups(ctx); return err == nil && len(gs) == 1 && len(gs[0].Members) == 2 })
	if _, err := cb.GroupJoin(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.GroupSend(ctx, g.ID, "group secret"); err != nil {
		t.Fatal(err)
	}
	waitJS(t, pb, "a notification of the group message",
		`window.__notes.some(n => n.tag === "group:`+g.ID+`" && n.title === "Team" && n.body === "New message from Alice")`)

	// A channel B follows; A posts an alert.
	ch, err := ca.CreateChannel(ctx, "Town alerts", false)
	if err != nil {
		t.Fatal(err)
	}
	link, err := ca.ChannelInvite(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.FollowChannel(ctx, link.Link); err != nil {
		t.Fatal(err)
	}
	pollAPI(t, "B gets a plain post (the topic's mesh formed)", func() bool {
		ps, err := cb.ChannelPosts(ctx, ch.ID, 0)
		if err == nil && len(ps.Posts) > 0 {
			return true
		}
		_, _ = ca.Post(ctx, ch.ID, "warm-up", false)
		return false
	})
	if _, err := ca.Post(ctx, ch.ID, "Missiles: shelter now", true); err != nil {
		t.Fatal(err)
	}
	waitJS(t, pb, "an urgent notification of the alert",
		`window.__notes.some(n => n.requireInteraction && n.title === "⚠ Alert from Town alerts" && n.body === "Missiles: shelter now")`)
	waitJS(t, pb, "the siren playing", `window.samizdatSound.last === "alert" && window.samizdatSound.state === "running"`)
	if title := eval[string](t, pb, `document.title`); !strings.HasPrefix(title, "⚠") {
		t.Errorf("title during an alert: %q", title)
	}

	// Clicking the notification opens the channel.
	eval[bool](t, pb, `(() => { window.__notes.find(n => n.requireInteraction).n.onclick(); return true })()`)
	waitJS(t, pb, "the channel open", `document.querySelector("#conv-title")?.textContent.includes("Town alerts")`)

	// B mutes Alice: her message makes no notification, the next alert does.
	cur, err := cb.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acctA := na.Messenger.AccountID()
	click(t, pb, "#settings-btn")
	waitJS(t, pb, "the mute menu", `!!document.querySelector('#dlg[open] #mute-chat option[value="chat:`+acctA+`"]')`)
	eval[bool](t, pb, `(() => { document.querySelector("#mute-chat").value = "chat:`+acctA+`"; document.querySelector("#mute-for").value = "1"; document.querySelector("#mute-btn").click(); return true })()`)
	waitJS(t, pb, "Alice muted", `!!document.querySelector('[data-unmute="chat:`+acctA+`"]')`)
	click(t, pb, "#set-soundAlerts") // and the siren off
	pollAPI(t, "the siren off on the node", func() bool { s, err := cb.Settings(ctx); return err == nil && !s.SoundAlerts })
	click(t, pb, "#dlg-close")
	if s, err := cb.Settings(ctx); err != nil || len(s.Muted) != 1 || s.ShowText != cur.ShowText {
		t.Fatalf("settings after muting: %+v %v", s, err)
	}
	plays := eval[int](t, pb, `window.samizdatSound.plays`)
	notes := eval[int](t, pb, `window.__notes.length`)
	handled = eval[int](t, pb, `window.samizdatNotify.handled`)
	if _, err := ca.Send(ctx, "Bob", "muted message"); err != nil {
		t.Fatal(err)
	}
	waitJS(t, pb, "the muted message's event handled", `window.samizdatNotify.handled > `+itoa(handled))
	if _, err := ca.Post(ctx, ch.ID, "Second wave", true); err != nil {
		t.Fatal(err)
	}
	waitJS(t, pb, "the second alert's notification", `window.__notes.some(n => n.body === "Second wave" && n.requireInteraction)`)
	if n := eval[int](t, pb, `window.__notes.length`); n != notes+1 {
		t.Errorf("notifications after muting Alice: %d new, want 1 (the alert)", n-notes)
	}
	if n := eval[int](t, pb, `window.samizdatSound.plays`); n != plays {
		t.Errorf("%d sounds with the siren off and Alice muted", n-plays)
	}

	// The language is kept by the node: set there, the page takes it.
	cur, err = cb.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur.Language = "ru"
	if _, err := cb.PutSettings(ctx, cur); err != nil {
		t.Fatal(err)
	}
	do(t, pb, chromedp.Reload())
	waitJS(t, pb, "the page in the node's language", `document.querySelector("#settings-btn")?.title === "Настройки"`)

	notificationsDenied(t, b)
}

// notificationsDenied: the page never asks for the permission on load;
// after onboarding it offers notifications, and when the browser blocks
// them it says where to re-enable them and goes on working. (Run after
// the granted case, not beside it: in headless Chromium one tab's
// permission override reached the other's origin.)
func notificationsDenied(t *testing.T, b context.Context) {
	url, node := waitingNode(t)
	p := tab(t, b)
	origin := strings.SplitN(url, "/#", 2)[0]
	do(t, p, setNotifications(origin, cdpbrowser.PermissionSettingDenied), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#ob-name")))
	do(t, p, chromedp.SendKeys(chromedp.CSS("#ob-name"), "Carol"), chromedp.Click(chromedp.CSS("#ob-nopass")), chromedp.Click(chromedp.CSS("#ob-create")))
	waitJS(t, p, "the notification offer after onboarding, blocked", `document.querySelector("#welcome #notify-denied")?.textContent.includes("site settings")`)
	node()
	click(t, p, "#ob-continue")
	do(t, p, chromedp.WaitVisible(chromedp.CSS("#settings-btn")))
	click(t, p, "#settings-btn")
	waitJS(t, p, "the blocked notice in the settings", `!!document.querySelector("#dlg[open] #notify-denied")`)
	if n := eval[int](t, p, `window.__asked`); n != 0 {
		t.Errorf("the page asked for the permission %d times by itself", n)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// pollAPI waits for cond (a call to a node's API).
func pollAPI(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
