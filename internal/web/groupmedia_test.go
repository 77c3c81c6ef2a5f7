package web_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
)

// TestBrowserGroupPhotoAndVoiceNote drives files in a group between two
// real nodes' pages in headless Chromium: A attaches a photo in the group
// through the file input and records a voice note from Chromium's fake
// microphone; B's page shows the photo's preview and then the full image
// upright, and a player that plays; a pasted image and a dropped file
// arrive too; the group messages' API form carries the files.
func TestBrowserGroupPhotoAndVoiceNote(t *testing.T) {
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
	g, err := ca.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.GroupInvite(ctx, g.ID, "Bob"); err != nil {
		t.Fatal(err)
	}
	photo := filepath.Join(t.TempDir(), "garden.jpg")
	if err := os.WriteFile(photo, sidewaysJPEG(t), 0o600); err != nil {
		t.Fatal(err)
	}

	pa, pb := tab(t, b), tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()))
	do(t, pb, chromedp.Navigate(nb.LoginURL()))
	waitJS(t, pb, "the invitation in B's list", `!!document.querySelector('.chat[data-name="Family"] .invite-tag')`)
	click(t, pb, `.chat[data-name="Family"]`)
	do(t, pb, chromedp.WaitVisible(chromedp.CSS("#join-btn")))
	if !eval[bool](t, pb, `document.querySelector("#attach-btn").hidden`) {
		t.Error("the attach button shows on a group's invitation")
	}
	do(t, pb, chromedp.Click(chromedp.CSS("#join-btn")))
	waitJS(t, pb, "the group's composer in B", `!document.querySelector("#composer").hidden && !document.querySelector("#group-invite")`)
	waitJS(t, pa, "the group in A's list", `!!document.querySelector('.chat[data-name="Family"]')`)
	click(t, pa, `.chat[data-name="Family"]`)
	waitJS(t, pa, "the attach and record buttons in the group",
		`!document.querySelector("#composer").hidden && !document.querySelector("#attach-btn").hidden && !document.querySelector("#record-btn").hidden`)
	// B's sender key reaches A before A's photo needs B as a member: a
	// text both ways first, as people do.
	do(t, pb, chromedp.SendKeys(chromedp.CSS("#text"), "Joined\r"))
	waitJS(t, pa, "B's message in A", `[...document.querySelectorAll(".msg.in .body")].some(e => e.textContent === "Joined")`)

	// A attaches the photo; its own page shows it at once.
	t0 := eval[float64](t, pa, `Date.now()`)
	do(t, pa, chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{photo}))
	waitJS(t, pa, "the photo in A's group", `!!document.querySelector(".msg.out .file-img")`)

	// B sees the preview, then the full image, upright, with A's name.
	waitJS(t, pb, "the photo's preview in B", `!!document.querySelector(".msg.in .file-img")`)
	waitJS(t, pb, "the full photo in B",
		`(() => { const i = document.querySelector(".msg.in .file-img.full"); return i && i.complete && i.naturalWidth > 0 })()`)
	t.Logf("group photo: attached in A → full image shown in B: %.0f ms", eval[float64](t, pb, `Date.now()`)-t0)
	if w, h := eval[int](t, pb, `document.querySelector(".msg.in .file-img.full").naturalWidth`),
		eval[int](t, pb, `document.querySelector(".msg.in .file-img.full").naturalHeight`); w != 240 || h != 400 {
		t.Errorf("B's photo is %dx%d, want 240x400 (upright)", w, h)
	}
	if s := eval[string](t, pb, `document.querySelector(".msg.in .file-img.full").closest(".msg").querySelector(".sender").textContent`); s != "Alice" {
		t.Errorf("the photo's sender in B: %q, want Alice", s)
	}

	// A records a voice note; B plays it.
	click(t, pa, "#record-btn")
	waitJS(t, pa, "the recording running two seconds", `/^0:0[2-9]/.test(document.querySelector("#rec-time")?.textContent || "")`)
	click(t, pa, "#rec-stop")
	waitJS(t, pa, "the voice note in A's group", `!!document.querySelector(".msg.out .voice")`)
	waitJS(t, pb, "the voice note's player in B", `!!document.querySelector(".msg.in .voice audio")?.src.startsWith("blob:")`)
	click(t, pb, ".msg.in .voice .play")
	waitJS(t, pb, "the voice note playing in B", `document.querySelector(".msg.in .voice audio").currentTime > 0`)
	screenshot(t, pb, "group-media")

	// A pastes an image into the group's composer and drops a file on it.
	eval[bool](t, pa, `(async () => {
		const c = document.createElement("canvas"); c.width = 120; c.height = 80;
		const g = c.getContext("2d"); g.fillStyle = "#3c3"; g.fillRect(0, 0, 120, 80);
		const png = await new Promise((r) => c.toBlob(r, "image/png"));
		const dt = new DataTransfer(); dt.items.add(new File([png], "image.png", { type: "image/png" }));
		document.querySelector("#text").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
		const dd = new DataTransfer(); dd.items.add(new File(["bread, tea, apples"], "list.txt", { type: "text/plain" }));
		document.querySelector("#msgs").dispatchEvent(new DragEvent("drop", { dataTransfer: dd, bubbles: true, cancelable: true }));
		return true })()`)
	waitJS(t, pb, "the pasted image in B's group", `[...document.querySelectorAll(".msg.in .file-img")].some((i) => i.alt.startsWith("pasted-") && i.alt.endsWith(".png"))`)
	waitJS(t, pb, "the dropped file's card in B's group, with Save",
		`[...document.querySelectorAll(".msg.in .file-card")].some((e) => e.querySelector(".file-name")?.textContent === "list.txt" && e.querySelector(".save-file"))`)

	conv, err := cb.GroupMessages(ctx, g.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var img, voice *apiclient.FileInfo
	for _, m := range conv.Messages {
		switch {
		case m.File == nil:
		case m.File.DurationMS > 0:
			voice = m.File
		case m.File.Name == "garden.jpg":
			img = m.File
		}
	}
	if img == nil || img.Width != 240 || len(img.Thumbnail) == 0 || voice == nil || len(voice.Waveform) != 64 {
		t.Errorf("the group's files as B's node has them: photo %v, voice note %v", img != nil, voice != nil)
	}
}

// TestBrowserChannelPhoto: the owner of a channel attaches a photo in its
// page; a subscriber's page shows the post's preview, then the full
// image, and no attach button (followers do not post).
func TestBrowserChannelPhoto(t *testing.T) {
	b := browser(t)
	na, nb := startNode(t, "Alice"), startNode(t, "Bob")
	ctx := t.Context()
	ca, cb := apiclient.New(na.APIAddr, na.Token), apiclient.New(nb.APIAddr, nb.Token)
	ch, err := ca.CreateChannel(ctx, "Home news", false)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ca.ChannelInvite(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.FollowChannel(ctx, inv.Link); err != nil {
		t.Fatal(err)
	}
	pollAPI(t, "B on the channel's topic", func() bool {
		cs, err := ca.Channels(ctx)
		return err == nil && len(cs) == 1 && cs[0].Peers == 1
	})
	photo := filepath.Join(t.TempDir(), "garden.jpg")
	if err := os.WriteFile(photo, sidewaysJPEG(t), 0o600); err != nil {
		t.Fatal(err)
	}

	pa, pb := tab(t, b), tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()))
	do(t, pb, chromedp.Navigate(nb.LoginURL()))
	waitJS(t, pa, "the channel in A's list", `!!document.querySelector('.chat[data-name="Home news"]')`)
	waitJS(t, pb, "the channel in B's list", `!!document.querySelector('.chat[data-name="Home news"]')`)
	click(t, pa, `.chat[data-name="Home news"]`)
	click(t, pb, `.chat[data-name="Home news"]`)
	waitJS(t, pa, "the attach button for the owner", `!document.querySelector("#composer").hidden && !document.querySelector("#attach-btn").hidden`)
	waitJS(t, pb, "the channel open in B", `document.querySelector("#conv-title")?.textContent.includes("Home news") && document.querySelector("#composer").hidden`)
	if eval[bool](t, pb, `getComputedStyle(document.querySelector("#composer")).display !== "none"`) {
		t.Error("a follower's page shows the composer (and its attach button)")
	}

	do(t, pa, chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{photo}))
	waitJS(t, pa, "the photo in A's channel", `!!document.querySelector(".post .file-img")`)
	waitJS(t, pb, "the post's preview in B", `!!document.querySelector(".post .file-img")`)
	waitJS(t, pb, "the full photo in B",
		`(() => { const i = document.querySelector(".post .file-img.full"); return i && i.complete && i.naturalWidth > 0 })()`)
	if w, h := eval[int](t, pb, `document.querySelector(".post .file-img.full").naturalWidth`),
		eval[int](t, pb, `document.querySelector(".post .file-img.full").naturalHeight`); w != 240 || h != 400 {
		t.Errorf("B's photo is %dx%d, want 240x400 (upright)", w, h)
	}
	screenshot(t, pb, "channel-photo")
	ps, err := cb.ChannelPosts(ctx, ch.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Posts) != 1 || ps.Posts[0].File == nil || ps.Posts[0].File.Name != "garden.jpg" {
		t.Errorf("B's posts: %+v", ps.Posts)
	}
}

// TestUploadToRoomsRefused: the upload call refuses a group or channel
// it cannot send to, with the API's error codes, and keeps nothing.
func TestUploadToRoomsRefused(t *testing.T) {
	na, nb := startNode(t, "Alice"), startNode(t, "Bob")
	ctx := t.Context()
	ca, cb := apiclient.New(na.APIAddr, na.Token), apiclient.New(nb.APIAddr, nb.Token)
	ch, err := ca.CreateChannel(ctx, "News", false)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ca.ChannelInvite(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.FollowChannel(ctx, inv.Link); err != nil {
		t.Fatal(err)
	}
	upload := func(n *app.Node, query string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.APIAddr+"/api/v1/files/upload?"+query, strings.NewReader("hello"))
		req.Header.Set("Authorization", "Bearer "+n.Token)
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Code string `json:"code"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Code
	}
	for _, c := range []struct {
		node       *app.Node
		query      string
		status     int
		code, what string
	}{
		{na, "group=abcdef123456&name=a.txt", 404, "not_found", "an unknown group"},
		{na, "channel=abcdef123456&name=a.txt", 404, "not_found", "an unknown channel"},
		{nb, "channel=" + ch.ID + "&name=a.txt", 403, "forbidden", "a channel followed, not owned"},
		{na, "channel=" + ch.ID + "&name=a.txt&waveform=%21%21", 400, "bad_request", "a bad waveform"},
		{na, "channel=" + ch.ID + "&name=a.txt&durationMs=-5", 400, "bad_request", "a negative duration"},
		{na, "contact=Bob&name=a.txt&waveform=%21%21", 400, "bad_request", "a bad waveform to a contact"},
	} {
		if status, code := upload(c.node, c.query); status != c.status || code != c.code {
			t.Errorf("%s: %d %q, want %d %q", c.what, status, code, c.status, c.code)
		}
	}
	if ps, err := ca.ChannelPosts(ctx, ch.ID, 0); err != nil || len(ps.Posts) != 0 {
		t.Errorf("posts after refused uploads: %+v %v", ps.Posts, err)
	}
	if fs, err := ca.Files(ctx); err != nil || len(fs) != 0 {
		t.Errorf("transfers after refused uploads: %+v %v", fs, err)
	}
	// The same file goes when it may.
	if status, _ := upload(na, "channel="+ch.ID+"&name=a.txt"); status != 201 {
		t.Errorf("an upload by the owner: %d", status)
	}
}
