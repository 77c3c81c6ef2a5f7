package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestBrowserGroupsAndChannels drives the groups and channels screens of
// two real nodes on loopback in headless Chromium: A creates a group
// inviting B, B joins from the invitation, both write and see the
// sender's name, A renames the group; A creates a channel and shows its
// link, B follows it by pasting the link (a broken link first), A posts
// and then posts an alert while B has the group open: B's page shows the
// alert dialog at once, which Escape does not dismiss, and marks the
// post in the channel; Persian is laid out right to left on these
// screens, and a phone-sized window shows one pane at a time; A removes
// B from the group.
func TestBrowserGroupsAndChannels(t *testing.T) {
	b := browser(t)
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
	pa, pb := tab(t, b), tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS("#new-group-btn")))
	do(t, pb, chromedp.Navigate(nb.LoginURL()), chromedp.WaitVisible(chromedp.CSS("#new-group-btn")))

	// A creates a group and invites Bob.
	do(t, pa, chromedp.Click(chromedp.CSS("#new-group-btn")), chromedp.WaitVisible(chromedp.CSS("#ng-name")))
	do(t, pa, chromedp.Click(chromedp.CSS("#ng-submit")))
	waitJS(t, pa, "the missing-name error", `document.querySelector("#ng-error").textContent !== ""`)
	do(t, pa, chromedp.SendKeys(chromedp.CSS("#ng-name"), "Team"),
		chromedp.Click(chromedp.CSS(`input[name=invite][data-name="Bob"]`)),
		chromedp.Click(chromedp.CSS("#ng-submit")))
	waitJS(t, pa, "the new group open in A", `document.querySelector("#conv-title small")?.textContent === "2 members"`)

	// B gets the invitation and joins.
	waitJS(t, pb, "the invitation in B's list", `!!document.querySelector('.chat[data-name="Team"] .invite-tag')`)
	click(t, pb, `.chat[data-name="Team"]`)
	do(t, pb, chromedp.WaitVisible(chromedp.CSS("#join-btn")))
	if !eval[bool](t, pb, `document.querySelector("#composer").hidden`) {
		t.Error("the composer shows before B joined")
	}
	do(t, pb, chromedp.Click(chromedp.CSS("#join-btn")))
	waitJS(t, pb, "the group's composer in B", `!document.querySelector("#composer").hidden && !document.querySelector("#group-invite")`)

	// Both write; each sees the other's name on the messages.
	do(t, pa, chromedp.SendKeys(chromedp.CSS("#text"), "Meeting at ten\r"))
	waitJS(t, pb, "A's message in B, with A's name",
		`[...document.querySelectorAll(".msg.in")].some(e => e.querySelector(".sender")?.textContent === "Alice" && e.querySelector(".body").textContent === "Meeting at ten")`)
	do(t, pb, chromedp.SendKeys(chromedp.CSS("#text"), "I will be there\r"))
	waitJS(t, pa, "B's answer in A, with B's name",
		`[...document.querySelectorAll(".msg.in")].some(e => e.querySelector(".sender")?.textContent === "Bob" && e.querySelector(".body").textContent === "I will be there")`)

	// A, the admin, renames the group from its details.
	click(t, pa, "#conv-title") // laid out again at every group event
	do(t, pa, chromedp.WaitVisible(chromedp.CSS("#members")))
	if n := eval[int](t, pa, `document.querySelectorAll("#members li").length`); n != 2 {
		t.Errorf("members listed in A: %d, want 2", n)
	}
	do(t, pa, chromedp.SetValue(chromedp.CSS("#group-rename"), "Team Ten"), chromedp.Click(chromedp.CSS("#rename-btn")))
	waitJS(t, pa, "the new name in A", `document.querySelector("#conv-title")?.textContent.includes("Team Ten")`)
	do(t, pa, chromedp.Click(chromedp.CSS("#dlg-close")))
	waitJS(t, pb, "the new name in B", `document.querySelector("#conv-title")?.textContent.includes("Team Ten")`)
	screenshot(t, pb, "group")

	// A creates a channel; its link shows at once.
	do(t, pa, chromedp.Click(chromedp.CSS("#new-channel-btn")), chromedp.WaitVisible(chromedp.CSS("#nc-name")),
		chromedp.SendKeys(chromedp.CSS("#nc-name"), "Town alerts"), chromedp.Click(chromedp.CSS("#nc-submit")))
	waitJS(t, pa, "the channel link", `(document.querySelector("#chan-link")?.value || "").startsWith("samizdat:channel/")`)
	link := eval[string](t, pa, `document.querySelector("#chan-link").value`)
	// Closed from the script: after a protocol mouse click on this closing
	// dialog, headless Chromium lost the tab's key events.
	click(t, pa, "#dlg-close")
	if eval[bool](t, pa, `document.querySelector("#alert-toggle").hidden`) {
		t.Error("no alert toggle in the owner's composer")
	}

	// B follows it by pasting the link (a broken one first).
	do(t, pb, chromedp.Click(chromedp.CSS("#follow-btn")), chromedp.WaitVisible(chromedp.CSS("#follow-link")),
		chromedp.SendKeys(chromedp.CSS("#follow-link"), "samizdat:channel/broken"), chromedp.Click(chromedp.CSS("#follow-submit")))
	waitJS(t, pb, "the bad-link error", `document.querySelector("#follow-error").textContent.includes("not a valid channel link")`)
	do(t, pb, chromedp.SetValue(chromedp.CSS("#follow-link"), link), chromedp.Click(chromedp.CSS("#follow-submit")))
	waitJS(t, pb, "the channel open in B", `document.querySelector("#conv-title")?.textContent.includes("Town alerts") && document.querySelector("#composer").hidden`)

	// B goes back to the group; A posts, then posts an alert.
	click(t, pb, `.chat[data-name="Team Ten"]`)
	waitJS(t, pb, "the group open in B", `!document.querySelector("#composer").hidden`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		cs, err := ca.Channels(ctx)
		if err == nil && len(cs) == 1 && cs[0].Peers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B never joined the channel's topic: %+v %v", cs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// No wait for a heartbeat: B is among the topic's peers, and a post is
	// flood-published to every one of them (gossipsub's default).
	// Typed into the composer and sent with its button (headless Chromium
	// sometimes drops key events to a tab whose dialog was just closed).
	do(t, pa, chromedp.SetValue(chromedp.CSS("#text"), "Bridge closed"))
	eval[bool](t, pa, `(() => { document.querySelector("#send").click(); return true })()`)
	waitJS(t, pa, "the post in A", `document.querySelector(".post .body")?.textContent === "Bridge closed"`)
	waitJS(t, pb, "news of the channel in B's list", `!!document.querySelector('.chat[data-name="Town alerts"] .badge')`)
	eval[bool](t, pb, `(() => { const d = document.querySelector("#alert-dlg"); window.alertAt = 0;
		new MutationObserver(() => { if (d.open && !window.alertAt) window.alertAt = Date.now() }).observe(d, {attributes: true}); return true })()`)
	do(t, pa, chromedp.Click(chromedp.CSS("#post-alert")), chromedp.SetValue(chromedp.CSS("#text"), "Shelter now"))
	sentAt := eval[float64](t, pa, `(() => { const t = Date.now(); document.querySelector("#send").click(); return t })()`)
	waitJS(t, pb, "the alert dialog in B", `document.querySelector("#alert-dlg").open && document.querySelector("#alert-text").textContent === "Shelter now"`)
	shownAt := eval[float64](t, pb, `window.alertAt`)
	t.Logf("alert: %.0f ms from A's click to B's dialog", shownAt-sentAt)
	if eval[bool](t, pa, `document.querySelector("#post-alert").checked`) {
		t.Error("the alert toggle stayed on after posting")
	}
	waitJS(t, pb, "the channel marked in B's list", `!!document.querySelector('.chat[data-name="Town alerts"] .alert-badge')`)
	screenshot(t, pb, "alert")
	do(t, pb, chromedp.KeyEvent("\x1b"))
	if !eval[bool](t, pb, `document.querySelector("#alert-dlg").open`) {
		t.Error("Escape dismissed the alert")
	}
	do(t, pb, chromedp.Click(chromedp.CSS("#alert-open")))
	waitJS(t, pb, "the channel with the alert marked",
		`document.querySelector("#conv-title")?.textContent.includes("Town alerts") && document.querySelector(".post.alert .body")?.textContent === "Shelter now" && document.querySelector(".post:not(.alert) .body")?.textContent === "Bridge closed"`)
	if eval[bool](t, pb, `document.querySelector("#alert-dlg").open || !!document.querySelector(".alert-badge")`) {
		t.Error("the alert dialog or the list's alert mark stayed after opening the channel")
	}

	// Persian: right to left on the channel and group screens.
	setLang(t, pb, "fa")
	waitJS(t, pb, "Persian", `document.documentElement.dir === "rtl" && document.querySelector(".post.alert .alert-tag")?.textContent.includes("هشدار")`)
	if !eval[bool](t, pb, `document.querySelector(".side").getBoundingClientRect().left > document.querySelector(".conv").getBoundingClientRect().left`) {
		t.Error("in Persian the chat list is not on the right")
	}
	click(t, pb, `.chat[data-name="Team Ten"]`)
	waitJS(t, pb, "the group in Persian", `document.querySelector("#conv-title small")?.textContent === "2 عضو" && document.querySelector("#new-group-btn").textContent === "گروه جدید"`)
	setLang(t, pb, "en")

	// A phone-sized window: the group alone, then the list with its buttons.
	do(t, pb, chromedp.EmulateViewport(390, 760))
	waitJS(t, pb, "the group alone on a phone", `getComputedStyle(document.querySelector(".side")).display === "none" && getComputedStyle(document.querySelector("#back")).display !== "none"`)
	click(t, pb, "#back")
	waitJS(t, pb, "the list alone on a phone", `getComputedStyle(document.querySelector("#conv")).display === "none"`)
	if !eval[bool](t, pb, `[...document.querySelectorAll(".actions button")].every(b => { const r = b.getBoundingClientRect(); return r.width > 0 && r.right <= innerWidth && r.left >= 0 })`) {
		t.Error("the group and channel buttons do not fit a phone-sized window")
	}
	click(t, pb, `.chat[data-name="Team Ten"]`)
	do(t, pb, chromedp.EmulateViewport(1000, 700))

	// A removes B; B's page says B is no longer in the group.
	click(t, pa, `.chat[data-name="Team Ten"]`)
	waitJS(t, pa, "the group open in A", `document.querySelector("#conv-title")?.textContent.includes("Team Ten")`)
	click(t, pa, "#conv-title")
	do(t, pa, chromedp.WaitVisible(chromedp.CSS("#members .remove")), chromedp.Click(chromedp.CSS("#members .remove")))
	waitJS(t, pa, "one member left in A", `document.querySelectorAll("#members li").length === 1`)
	waitJS(t, pb, "the group gone in B", `document.querySelector("#conv-title small")?.textContent === "You are no longer in this group" && document.querySelector("#composer").hidden`)
}

// click clicks an element from the page's script: the chat list and the
// conversation's title are laid out again at events, so a node found by the browser protocol may
// be gone by the time it is clicked.
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	waitJS(t, ctx, sel, `!!document.querySelector('`+sel+`')`)
	eval[bool](t, ctx, `(() => { document.querySelector('`+sel+`').click(); return true })()`)
}
