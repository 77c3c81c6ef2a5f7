package main

import (
	"bytes"
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pngWithText is a PNG carrying a tEXt metadata chunk holding secret.
func pngWithText(t *testing.T, secret string) ([]byte, image.Image) {
	img := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	for y := range 200 {
		for x := range 300 {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	data := append([]byte("Comment\x00"), secret...)
	chunk := bin.BigEndian.AppendUint32(nil, uint32(len(data)))
	chunk = append(chunk, "tEXt"...)
	chunk = append(chunk, data...)
	chunk = bin.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	at := 8 + 25 // signature, IHDR
	out := append(append(append([]byte(nil), b[:at]...), chunk...), b[at:]...)
	return out, img
}

type transfer struct {
	MessageID string `json:"messageId"`
	Incoming  bool   `json:"incoming"`
	Name      string `json:"name"`
	MIME      string `json:"mime"`
	Done      int    `json:"chunksDone"`
	Total     int    `json:"chunksTotal"`
	State     string `json:"state"`
	Served    int    `json:"chunksServed"`
	BytesOut  int64  `json:"bytesServed"`
}

func (p *profile) files() []transfer {
	p.t.Helper()
	var ts []transfer
	if err := json.Unmarshal([]byte(p.must("files", "--json")), &ts); err != nil {
		p.t.Fatal(err)
	}
	return ts
}

// TestCLIFiles sends a photo between two `samizdat up` daemons with send
// --file, follows it with files --json and writes it out with save.
func TestCLIFiles(t *testing.T) {
	t.Parallel()
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	dir := t.TempDir()
	const secret = "GPS 55.7558N 37.6173E"
	raw, img := pngWithText(t, secret)
	photo := filepath.Join(dir, "photo.png")
	os.WriteFile(photo, raw, 0o600)

	alice.fails("files need it", "send", "bob", "--file", photo)
	alice.start()
	bob.start()
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")))
	alice.fails("cannot read", "send", "bob", "--file", filepath.Join(dir, "missing.png"))

	id := strings.TrimSpace(alice.must("send", "bob", "--file", photo, "the", "view"))
	alice.waitState("bob", id, "delivered")
	bob.eventuallyTransfer(t, "bob has the photo", id, func(tr transfer) bool { return tr.State == "complete" })
	tr := bob.files()[0]
	if tr.Name != "photo.png" || tr.MIME != "image/png" || !tr.Incoming || tr.Done != tr.Total {
		t.Fatalf("bob's transfer: %+v", tr)
	}
	// The sender sees what the recipient fetched.
	alice.eventuallyTransfer(t, "alice sees bob's fetch", id, func(a transfer) bool {
		return !a.Incoming && a.Total == tr.Total && a.Served == a.Total && a.BytesOut > 0
	})
	if line := alice.must("files"); !strings.Contains(line, fmt.Sprintf("served %d/%d chunks", tr.Total, tr.Total)) {
		t.Fatalf("alice's files: %s", line)
	}
	if ms := bob.messages("alice"); len(ms) != 1 || ms[0].Body != "the view" {
		t.Fatalf("bob's messages: %+v", ms)
	}
	out := filepath.Join(dir, "saved.png")
	bob.must("save", id, out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte(secret)) {
		t.Error("the photo's metadata reached bob")
	}
	dec, err := png.Decode(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []image.Point{{0, 0}, {123, 45}, {299, 199}} {
		r1, g1, b1, _ := dec.At(pt.X, pt.Y).RGBA()
		r2, g2, b2, _ := img.At(pt.X, pt.Y).RGBA()
		if r1 != r2 || g1 != g2 || b1 != b2 {
			t.Fatalf("pixel %v differs", pt)
		}
	}
	bob.fails("exists", "save", id, out)
	bob.fails("no file with this message", "save", "00112233445566778899aabbccddeeff", filepath.Join(dir, "x"))
}
