package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// TestWebUploadsAndAutoDownload exercises the calls behind the web app's
// attachments on two real nodes: a photo, a voice note (duration and
// waveform) and a file over the receiver's automatic download limit are
// uploaded as bodies; the receiver's messages carry their previews; the
// large one waits until asked for; contents are served only when
// complete, and never as a page.
func TestWebUploadsAndAutoDownload(t *testing.T) {
	ctx := context.Background()
	a, b := startNode(t, "alice"), startNode(t, "bob")
	ca, cb := client(a), client(b)
	inv, err := cb.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddContact(ctx, inv.Link, "Bob"); err != nil {
		t.Fatal(err)
	}
	st, err := cb.PutSettings(ctx, apiclient.Settings{AutoDownloadMB: 1, Language: "", Muted: map[string]time.Time{}})
	if err != nil || st.AutoDownloadMB != 1 {
		t.Fatalf("settings: %+v %v", st, err)
	}
	if _, err := cb.PutSettings(ctx, apiclient.Settings{AutoDownloadMB: -1}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("negative limit: %v", err)
	}

	if st, err := ca.Status(ctx); err != nil || st.MaxFileSize != media.DefaultMaxFileSize {
		t.Fatalf("status: maxFileSize %d, %v", st.MaxFileSize, err)
	}
	events, stop := b.Messenger.Subscribe()
	defer stop()

	img := image.NewRGBA(image.Rect(0, 0, 300, 200))
	for y := range 200 {
		for x := range 300 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 120, 255})
		}
	}
	var pngBuf bytes.Buffer
	png.Encode(&pngBuf, img)
	photo, err := ca.Upload(ctx, apiclient.UploadRequest{Contact: "Bob", Name: "photo.png", MIME: "image/png", Text: "the garden"},
		bytes.NewReader(pngBuf.Bytes()), int64(pngBuf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if photo.File == nil || photo.File.Width != 300 || photo.File.Height != 200 || len(photo.File.Thumbnail) == 0 || photo.Body != "the garden" {
		t.Fatalf("sent photo: %+v", photo)
	}
	voice := make([]byte, 40_000)
	rand.Read(voice)
	wave := []byte{0, 40, 255, 128, 7}
	note, err := ca.Upload(ctx, apiclient.UploadRequest{Contact: "Bob", Name: "voice.webm", MIME: "audio/webm;codecs=opus", DurationMS: 3200, Waveform: wave},
		bytes.NewReader(voice), int64(len(voice)))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20+5)
	rand.Read(big)
	bigMsg, err := ca.Upload(ctx, apiclient.UploadRequest{Contact: "Bob", Name: "big.bin"}, bytes.NewReader(big), int64(len(big)))
	if err != nil {
		t.Fatal(err)
	}
	page := []byte("<script>alert(1)</script>")
	htmlMsg, err := ca.Upload(ctx, apiclient.UploadRequest{Contact: "Bob", Name: "x.html", MIME: "text/html"}, bytes.NewReader(page), int64(len(page)))
	if err != nil {
		t.Fatal(err)
	}

	// A WebP leaves without its EXIF (location); an image that does not
	// decode is refused.
	webp := []byte("RIFF\x2a\x00\x00\x00WEBPVP8L\x04\x00\x00\x00abcdEXIF\x12\x00\x00\x00GPS 55.7558N 37.61")
	wm, err := ca.Upload(ctx, apiclient.UploadRequest{Contact: "Bob", Name: "a.webp", MIME: "image/webp"}, bytes.NewReader(webp), int64(len(webp)))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := ca.FileContent(ctx, wm.ID); err != nil || bytes.Contains(got, []byte("GPS")) || !bytes.HasSuffix(got, []byte("VP8L\x04\x00\x00\x00abcd")) {
		t.Errorf("WebP as sent: %q %v", got, err)
	}
	if _, err := ca.Upload(ctx, apiclient.UploadRequest{Contact: "Bob", Name: "b.jpg"}, strings.NewReader("not a jpeg"), 10); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("broken JPEG: %v", err)
	}

	// Bad uploads.
	if _, err := ca.Upload(ctx, apiclient.UploadRequest{Contact: "Mallory", Name: "a"}, strings.NewReader("x"), 1); !isCode(err, apiclient.CodeUnknownContact) {
		t.Errorf("unknown contact: %v", err)
	}
	if _, err := ca.Upload(ctx, apiclient.UploadRequest{Contact: "Bob", Name: "a", Waveform: make([]byte, media.MaxWaveform+1)}, strings.NewReader("x"), 1); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("long waveform: %v", err)
	}

	var files map[string]apiclient.Transfer
	waitFor(t, "bob's photo and voice note complete, the large file waiting", func() bool {
		ts, err := cb.Files(ctx)
		files = map[string]apiclient.Transfer{}
		for _, tr := range ts {
			files[tr.MessageID] = tr
		}
		return err == nil && files[photo.ID].State == media.StateComplete && files[note.ID].State == media.StateComplete &&
			files[bigMsg.ID].State == media.StateWaiting && files[htmlMsg.ID].State == media.StateComplete
	})
	p, err := cb.MessagesBefore(ctx, "alice", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]apiclient.Message{}
	for _, m := range p.Messages {
		byID[m.ID] = m
	}
	if f := byID[photo.ID].File; f == nil || f.MIME != "image/png" || f.Width != 300 || len(f.Thumbnail) == 0 {
		t.Errorf("bob's photo: %+v", f)
	}
	if f := byID[note.ID].File; f == nil || f.DurationMS != 3200 || len(f.Waveform) != len(wave) || f.Waveform[2] != 255 || f.MIME != "audio/webm; codecs=opus" {
		t.Errorf("bob's voice note: %+v", f)
	}

	got, ct, err := cb.FileContent(ctx, note.ID)
	if err != nil || !bytes.Equal(got, voice) || ct != "audio/webm; codecs=opus" {
		t.Errorf("voice note content: %d bytes, %q, %v", len(got), ct, err)
	}
	if _, _, err := cb.FileContent(ctx, bigMsg.ID); !isCode(err, apiclient.CodeExists) {
		t.Errorf("content of a waiting file: %v", err)
	}
	if _, _, err := cb.FileContent(ctx, "00ff"); !isCode(err, apiclient.CodeNotFound) {
		t.Errorf("content of no file: %v", err)
	}
	// A page sent as a file is a download, never run in the app's origin.
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.APIAddr+"/api/v1/files/content?id="+htmlMsg.ID, nil)
	req.Header.Set("Authorization", "Bearer "+b.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if h := resp.Header; h.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "sandbox") || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("HTML file served with %v", h)
	}

	if err := cb.FetchFile(ctx, bigMsg.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the large file fetched once asked for", func() bool {
		ts, _ := cb.Files(ctx)
		for _, tr := range ts {
			if tr.MessageID == bigMsg.ID {
				return tr.State == media.StateComplete
			}
		}
		return false
	})
	if got, _, err := cb.FileContent(ctx, bigMsg.ID); err != nil || !bytes.Equal(got, big) {
		t.Errorf("large file content: %d bytes, %v", len(got), err)
	}
	// Each completed file was announced on the event stream.
	want := map[string]bool{photo.ID: true, note.ID: true, bigMsg.ID: true, htmlMsg.ID: true}
	for len(want) > 0 {
		select {
		case e := <-events:
			if e.Type == messenger.EventFile && e.State == media.StateComplete && e.ContactID > 0 {
				delete(want, e.MessageID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no file event for %d completed files", len(want))
		}
	}
}
