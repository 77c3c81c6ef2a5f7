package web_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestBrowserPhotoAndVoiceNote drives the attachments of the web app of
// two real nodes in headless Chromium: A attaches a photo stored sideways
// (EXIF orientation 6) through the file input and records a voice note
// from Chromium's fake microphone; B's page shows the photo's preview,
// then the full image upright, which opens in the viewer and closes with
// Escape, and a player with the note's duration and waveform that plays.
// A file over B's automatic download limit waits with a Download button,
// then arrives and can be saved.
func TestBrowserPhotoAndVoiceNote(t *testing.T) {
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
	if _, err := ca.Send(ctx, "Bob", "Here is the garden, and a word about it"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	photo := filepath.Join(dir, "garden.jpg")
	if err := os.WriteFile(photo, sidewaysJPEG(t), 0o600); err != nil {
		t.Fatal(err)
	}

	pa, pb := tab(t, b), tab(t, b)
	do(t, pa, chromedp.Navigate(na.LoginURL()), chromedp.WaitVisible(chromedp.CSS(`.chat[data-name="Bob"]`)))
	do(t, pb, chromedp.Navigate(nb.LoginURL()))
	waitJS(t, pb, "Alice's chat in B", `!!document.querySelector('.chat[data-name="Alice"]')`)
	click(t, pa, `.chat[data-name="Bob"]`)
	click(t, pb, `.chat[data-name="Alice"]`)
	waitJS(t, pa, "the attach and record buttons", `!document.querySelector("#attach-btn").hidden && !document.querySelector("#record-btn").hidden`)

	// A attaches the photo; its own page shows it at once.
	t0 := eval[float64](t, pa, `Date.now()`)
	do(t, pa, chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{photo}))
	waitJS(t, pa, "the photo in A's chat", `!!document.querySelector(".msg.out .file-img")`)

	// B sees the preview, then the full image, upright.
	waitJS(t, pb, "the photo's preview in B", `!!document.querySelector(".msg.in .file-img")`)
	waitJS(t, pb, "the full photo in B",
		`(() => { const i = document.querySelector(".msg.in .file-img.full"); return i && i.complete && i.naturalWidth > 0 })()`)
	t.Logf("photo: attached in A → full image shown in B: %.0f ms", eval[float64](t, pb, `Date.now()`)-t0)
	if w, h := eval[int](t, pb, `document.querySelector(".msg.in .file-img.full").naturalWidth`),
		eval[int](t, pb, `document.querySelector(".msg.in .file-img.full").naturalHeight`); w != 240 || h != 400 {
		t.Errorf("B's photo is %dx%d, want 240x400 (upright)", w, h)
	}
	click(t, pb, ".msg.in .img-btn")
	waitJS(t, pb, "the viewer", `!!document.querySelector("#viewer img")?.src.startsWith("blob:")`)
	do(t, pb, chromedp.KeyEvent("\x1b"))
	waitJS(t, pb, "the viewer closed by Escape", `!document.querySelector("#viewer")`)

	// A records a voice note of two seconds or more.
	click(t, pa, "#record-btn")
	waitJS(t, pa, "the recording running two seconds", `/^0:0[2-9]/.test(document.querySelector("#rec-time")?.textContent || "")`)
	t0 = eval[float64](t, pa, `Date.now()`)
	click(t, pa, "#rec-stop")
	waitJS(t, pa, "the voice note in A's chat", `!!document.querySelector(".msg.out .voice")`)

	// B gets a player with the duration and the waveform, and it plays.
	waitJS(t, pb, "the voice note's player in B", `!!document.querySelector(".msg.in .voice audio")?.src.startsWith("blob:")`)
	t.Logf("voice note: Stop clicked in A → playable in B: %.0f ms", eval[float64](t, pb, `Date.now()`)-t0)
	dur := eval[string](t, pb, `document.querySelector(".msg.in .voice .dur").textContent`)
	if len(dur) < 4 || dur[:2] != "0:" || dur == "0:00" {
		t.Errorf("B's voice note shows duration %q", dur)
	}
	if n := eval[int](t, pb, `document.querySelectorAll(".msg.in .voice .wave i").length`); n != 64 {
		t.Errorf("B's waveform has %d bars, want 64", n)
	}
	p, err := cb.MessagesBefore(ctx, "Alice", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var voice *apiclient.FileInfo
	for _, m := range p.Messages {
		if m.File != nil && m.File.DurationMS > 0 {
			voice = m.File
		}
	}
	if voice == nil || voice.DurationMS < 1500 || len(voice.Waveform) != 64 || !bytes.Contains([]byte(voice.MIME), []byte("opus")) {
		t.Fatalf("the voice note as B's node has it: %+v", voice)
	}
	if top := slicesMax(voice.Waveform); top != 255 {
		t.Errorf("waveform peak %d, want 255 (scaled to the loudest slice)", top)
	}
	waitJS(t, pb, "the voice note named in B's chat list",
		`/^Voice note, 0:0[2-9]$/.test(document.querySelector('.chat[data-name="Alice"] .chat-last')?.textContent)`)
	screenshot(t, pb, "media")
	click(t, pb, ".msg.in .voice .play")
	waitJS(t, pb, "the voice note playing in B", `document.querySelector(".msg.in .voice audio").currentTime > 0`)

	// B sets the automatic download limit in Settings.
	click(t, pb, "#settings-btn")
	waitJS(t, pb, "the download limit in Settings", `!!document.querySelector("#set-autoDownloadMB")`)
	eval[bool](t, pb, `(() => { const i = document.querySelector("#set-autoDownloadMB"); i.value = "1"; i.dispatchEvent(new Event("change")); return true })()`)
	for deadline := time.Now().Add(15 * time.Second); ; {
		if st, err := cb.Settings(ctx); err == nil && st.AutoDownloadMB == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B's download limit was not saved")
		}
		time.Sleep(20 * time.Millisecond) // polling the node for the condition
	}
	do(t, pb, chromedp.Click(chromedp.CSS("#dlg-close")))

	// A file over it waits for a click in B; both pages show progress
	// bars (A's upload, B's transfer).
	observe := `window.seen = {}; new MutationObserver(() => {
		for (const s of [".uploading progress", ".file-progress", ".fetch-file"]) if (document.querySelector(s)) window.seen[s] = true;
	}).observe(document.body, { childList: true, subtree: true, attributes: true }); true`
	eval[bool](t, pa, observe)
	eval[bool](t, pb, observe)
	big := filepath.Join(dir, "notes.bin")
	data := make([]byte, 3<<19)
	rand.Read(data)
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, pa, chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{big}))
	waitJS(t, pb, "the Download button of the large file", `!!document.querySelector(".msg.in .fetch-file")`)
	click(t, pb, ".msg.in .fetch-file")
	waitJS(t, pb, "the large file received, with Save", `!!document.querySelector(".msg.in .save-file")`)
	if !eval[bool](t, pa, `!!window.seen[".uploading progress"]`) || !eval[bool](t, pb, `!!window.seen[".file-progress"]`) {
		t.Errorf("progress bars: A's upload %v, B's transfer %v", eval[bool](t, pa, `!!window.seen[".uploading progress"]`), eval[bool](t, pb, `!!window.seen[".file-progress"]`))
	}

	// A pastes an image into the composer and drops a file on the chat.
	eval[bool](t, pa, `(async () => {
		const c = document.createElement("canvas"); c.width = 120; c.height = 80;
		const g = c.getContext("2d"); g.fillStyle = "#c33"; g.fillRect(0, 0, 120, 80);
		const png = await new Promise((r) => c.toBlob(r, "image/png"));
		const dt = new DataTransfer(); dt.items.add(new File([png], "image.png", { type: "image/png" }));
		document.querySelector("#text").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
		const dd = new DataTransfer(); dd.items.add(new File(["shopping list: bread, tea"], "list.txt", { type: "text/plain" }));
		document.querySelector("#msgs").dispatchEvent(new DragEvent("drop", { dataTransfer: dd, bubbles: true, cancelable: true }));
		return true })()`)
	waitJS(t, pb, "the pasted image in B", `[...document.querySelectorAll(".msg.in .file-img")].some((i) => i.alt.startsWith("pasted-") && i.alt.endsWith(".png"))`)
	waitJS(t, pb, "the dropped file's card in B", `[...document.querySelectorAll(".msg.in .file-name")].some((e) => e.textContent === "list.txt")`)

	// The buttons speak Persian too.
	setLang(t, pb, "fa")
	waitJS(t, pb, "the attach button in Persian", `document.querySelector("#attach-btn")?.getAttribute("aria-label") === "پیوست فایل"`)
}

func slicesMax(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// sidewaysJPEG is a 400x240 picture (a sky, a sun, a lawn) stored as a
// phone held sideways stores it: turned, with EXIF orientation 6 (turn
// 90° clockwise to show it), so upright it is 240x400.
func sidewaysJPEG(t *testing.T) []byte {
	t.Helper()
	up := image.NewRGBA(image.Rect(0, 0, 240, 400))
	for y := range 400 {
		for x := range 240 {
			c := color.RGBA{uint8(110 + y/4), uint8(170 + y/8), 235, 255} // sky
			if dx, dy := x-170, y-80; dx*dx+dy*dy < 32*32 {
				c = color.RGBA{250, 210, 60, 255} // sun
			}
			if y > 250+(x*x)/900 {
				c = color.RGBA{uint8(40 + x/8), uint8(150 - (y-250)/4), 60, 255} // lawn
			}
			up.Set(x, y, c)
		}
	}
	// Stored sideways: what orientation 6 turns upright.
	img := image.NewRGBA(image.Rect(0, 0, 400, 240))
	for y := range 240 {
		for x := range 400 {
			img.Set(x, y, up.At(239-y, x))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00")
	app1 := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(app1)+2))
	out := append([]byte{0xff, 0xd8}, seg...)
	out = append(out, app1...)
	return append(out, buf.Bytes()[2:]...)
}
