package web_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/identity"
)

// strangerWrites has from write to to from to's card alone (forwarded, no
// invite secret): a contact request on to's side.
func strangerWrites(t *testing.T, from, to *app.Node, text string) {
	t.Helper()
	ctx := context.Background()
	link, err := to.Messenger.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := identity.ParseInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := identity.EncodeInvite(inv.SignedCard, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := from.Messenger.AddContact(ctx, fwd, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := from.Messenger.Send(ctx, c.Name, text); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserRequests: strangers' messages show as requests at the top of
// the chat list, not as chats; accepting one makes its chat (with the
// message), declining one removes it. The strings exist in every language.
// In between, a contact is renamed and another deleted from the page
// (renameAndDelete).
func TestBrowserRequests(t *testing.T) {
	b := browser(t)
	na, nb, nc := startNode(t, "Alice"), startNode(t, "Bob"), startNode(t, "Carol")
	pa := tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS("#invite-btn")))

	strangerWrites(t, nb, na, "hello from a stranger")
	waitJS(t, pa, "Bob's request", `document.querySelector('.chat.request[data-name="Bob"]') !== null`)
	if eval[bool](t, pa, `document.querySelector('.chat:not(.request)[data-name="Bob"]') !== null`) {
		t.Fatal("the stranger shows as a chat")
	}
	waitJS(t, pa, "the requests heading", `document.querySelector("#requests-head")?.textContent === "Requests (1)"`)
	setLang(t, pa, "ru")
	waitJS(t, pa, "Russian heading", `document.querySelector("#requests-head")?.textContent === "Запросы (1)"`)
	setLang(t, pa, "fa")
	waitJS(t, pa, "Persian heading", `document.querySelector("#requests-head")?.textContent === "درخواست‌ها (1)"`)
	setLang(t, pa, "en")

	click(t, pa, `.chat.request[data-name="Bob"]`)
	do(t, pa, chromedp.WaitVisible(chromedp.CSS("#request-accept")))
	waitJS(t, pa, "the request's message", `document.querySelector("#request-msgs")?.textContent.includes("hello from a stranger")`)
	screenshot(t, pa, "request")
	do(t, pa, chromedp.Click(chromedp.CSS("#request-accept")))
	waitJS(t, pa, "Bob's chat", `document.querySelector('.chat:not(.request)[data-name="Bob"]') !== null && document.querySelector(".chat.request") === null`)
	click(t, pa, `.chat[data-name="Bob"]`)
	waitJS(t, pa, "the accepted message in the chat", `[...document.querySelectorAll(".msg.in .body")].some(e => e.textContent === "hello from a stranger")`)

	renameAndDelete(t, pa, na, nc)

	// Carol, deleted, is a stranger again: her message is a request.
	strangerWrites(t, nc, na, "spam")
	waitJS(t, pa, "Carol's request", `document.querySelector('.chat.request[data-name="Carol"]') !== null`)
	do(t, pa, chromedp.Click(chromedp.CSS(`.chat.request[data-name="Carol"]`)), chromedp.WaitVisible(chromedp.CSS("#request-decline")),
		chromedp.Click(chromedp.CSS("#request-decline")))
	waitJS(t, pa, "Carol's request gone", `document.querySelector(".chat.request") === null && document.querySelector("#requests-head") === null`)
	if eval[bool](t, pa, `document.querySelector('.chat[data-name="Carol"]') !== null`) {
		t.Fatal("the declined stranger shows as a chat")
	}
	rs, err := na.Messenger.Requests(context.Background())
	if err != nil || len(rs) != 0 {
		t.Fatalf("requests left: %+v, %v", rs, err)
	}
}

// TestBrowserRequestNotification: with the page away, a stranger's first
// message makes one system notification that says a contact request came,
// without the stranger's text or name (nobody vouched for them); with the
// page in view it makes none (the request list shows it).
func TestBrowserRequestNotification(t *testing.T) {
	b := browser(t)
	notifyAlone(t)
	na, nb, nc := startNode(t, "Alice"), startNode(t, "Mallory"), startNode(t, "Trudy")
	pa := tab(t, b)
	do(t, pa, grantNotifications("http://"+na.APIAddr), chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS("#invite-btn")))

	strangerWrites(t, nc, na, "seen in the list")
	waitJS(t, pa, "Trudy's request", `document.querySelector('.chat.request[data-name="Trudy"]') !== null`)

	eval[bool](t, pa, `(() => { window.__hidden = true; return true })()`)
	strangerWrites(t, nb, na, "buy cheap pills")
	waitJS(t, pa, "the request's notification", `window.__notes.some(n => n.tag && n.tag.startsWith("request:"))`)
	notes := eval[[]map[string]any](t, pa, `window.__notes.map(n => ({title: n.title, body: n.body, tag: n.tag}))`)
	if len(notes) != 1 {
		t.Fatalf("notifications %v, want exactly one (none while the page was in view)", notes)
	}
	n := notes[0]
	if n["title"] != "New contact request" {
		t.Errorf("title %q", n["title"])
	}
	for _, leak := range []string{"pills", "Mallory", "seen in the list"} {
		if strings.Contains(n["title"].(string)+" "+n["body"].(string), leak) {
			t.Errorf("the notification shows %q: %v", leak, n)
		}
	}
}

// renameAndDelete: page p (node n's, with Bob's chat) renames Bob from his
// details: an empty name, a name another contact (Carol) has and one over
// 100 bytes are refused with their reasons; a free one shows in the chat
// list and the header, and the node has it. Then Carol is deleted: asked
// first, then gone from the list and from the node, the page back on the
// list.
func renameAndDelete(t *testing.T, p context.Context, n, carol *app.Node) {
	t.Helper()
	ctx := context.Background()
	inv, err := carol.Messenger.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Messenger.AddContact(ctx, inv, "Carol"); err != nil {
		t.Fatal(err)
	}
	waitJS(t, p, "Carol's chat", `document.querySelector('.chat[data-name="Carol"]') !== null`)
	click(t, p, `.chat[data-name="Bob"]`)
	waitJS(t, p, "Bob's chat open", `document.querySelector("#conv-title")?.textContent.includes("Bob")`)
	click(t, p, "#conv-title")
	do(t, p, chromedp.WaitVisible(chromedp.CSS("#ct-name")))
	if v := eval[string](t, p, `document.querySelector("#ct-name").value`); v != "Bob" {
		t.Errorf("the rename field holds %q, want Bob", v)
	}
	renameTo := func(name, what, cond string) {
		t.Helper()
		eval[bool](t, p, `(() => { document.querySelector("#ct-error").textContent = ""; document.querySelector("#ct-name").value = `+jsString(name)+`; return true })()`)
		do(t, p, chromedp.Click(chromedp.CSS("#ct-rename")))
		waitJS(t, p, what, cond)
	}
	renameTo("  ", "the empty-name error", `document.querySelector("#ct-error").textContent === "Type a name."`)
	renameTo("Carol", "the name-taken error", `document.querySelector("#ct-error").textContent.includes("Another contact is already called “Carol”")`)
	renameTo(strings.Repeat("Б", 60), "the too-long error", `document.querySelector("#ct-error").textContent.includes("at most 100 bytes")`)
	if c, err := n.Messenger.Contact(ctx, "Bob"); err != nil || c.Name != "Bob" {
		t.Fatalf("after the refused renames the node has %+v, %v", c, err)
	}
	renameTo("Bobby", "the renamed header", `!document.querySelector("#dlg").open && document.querySelector("#conv-title")?.textContent.includes("Bobby")`)
	waitJS(t, p, "the renamed chat in the list", `document.querySelector('.chat[data-name="Bobby"]') !== null && document.querySelector('.chat[data-name="Bob"]') === null`)
	if c, err := n.Messenger.Contact(ctx, "Bobby"); err != nil || c.Name != "Bobby" {
		t.Fatalf("the node's contact after renaming: %+v, %v", c, err)
	}
	screenshot(t, p, "contact-renamed")

	// Deleting Carol asks first; Cancel keeps her.
	click(t, p, `.chat[data-name="Carol"]`)
	waitJS(t, p, "Carol's chat open", `document.querySelector("#conv-title")?.textContent.includes("Carol")`)
	click(t, p, "#conv-title")
	do(t, p, chromedp.WaitVisible(chromedp.CSS("#ct-delete")), chromedp.Click(chromedp.CSS("#ct-delete")), chromedp.WaitVisible(chromedp.CSS("#ct-confirm")))
	if s := eval[string](t, p, `document.querySelector("#ct-confirm").textContent`); !strings.Contains(s, "Delete Carol?") || !strings.Contains(s, "on all your devices") || !strings.Contains(s, "invite") {
		t.Errorf("the delete confirmation says %q", s)
	}
	screenshot(t, p, "contact-delete")
	do(t, p, chromedp.Click(chromedp.CSS("#ct-delete-no")))
	waitJS(t, p, "the confirmation put away", `document.querySelector("#ct-confirm").hidden && !document.querySelector("#ct-delete").hidden`)
	if _, err := n.Messenger.Contact(ctx, "Carol"); err != nil {
		t.Fatalf("Carol is gone after Cancel: %v", err)
	}
	do(t, p, chromedp.Click(chromedp.CSS("#ct-delete")), chromedp.WaitVisible(chromedp.CSS("#ct-delete-yes")), chromedp.Click(chromedp.CSS("#ct-delete-yes")))
	waitJS(t, p, "Carol gone from the list, the page on the list",
		`!document.querySelector("#dlg").open && document.querySelector('.chat[data-name="Carol"]') === null && document.querySelector("#app").dataset.view === "list" && document.querySelector("#composer").hidden`)
	if _, err := n.Messenger.Contact(ctx, "Carol"); err == nil {
		t.Error("the node still has Carol after the delete")
	}
	cs, err := n.Messenger.Contacts(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "Bobby" {
		t.Errorf("the node's contacts after the delete: %+v, %v", cs, err)
	}
}
