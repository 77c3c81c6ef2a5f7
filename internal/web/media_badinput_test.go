package web_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestUploadBadInput (issue 16, bad input) on a real node through its
// API: a decompression bomb as an image (a PNG claiming 100000×100000
// pixels, refused from its header before any decoding), an upload cut off
// half way (the connection closes before the announced length), and one
// announcing more than the largest file are each refused with a 400 that
// says why; none leaves a message, a transfer, or a chunk in the
// profile's media directory.
func TestUploadBadInput(t *testing.T) {
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

	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
	bomb := buf.Bytes()
	binary.BigEndian.PutUint32(bomb[16:], 100000) // IHDR width, height, then its CRC
	binary.BigEndian.PutUint32(bomb[20:], 100000)
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29]))
	_, err = ca.Upload(ctx, apiclient.UploadRequest{Contact: "Bob", Name: "bomb.png", MIME: "image/png"}, bytes.NewReader(bomb), int64(len(bomb)))
	var ae *apiclient.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "image dimensions too large") {
		t.Fatalf("a decompression bomb: %v, want 400 image dimensions too large", err)
	}

	// raw sends an upload announcing length bytes and sending body, then
	// closes its side; it returns the status line and the body.
	raw := func(length int64, body []byte) (string, string) {
		t.Helper()
		u, _ := url.Parse("http://" + na.APIAddr)
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		q := url.Values{"contact": {"Bob"}, "name": {"cut.bin"}}.Encode()
		fmt.Fprintf(c, "POST /api/v1/files/upload?%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
			q, u.Host, na.Token, length)
		c.Write(body)
		c.(*net.TCPConn).CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a cut upload: %v", err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.Status, b.String()
	}
	half := make([]byte, 5*256<<10) // 5 of the 10 chunks announced
	rand.Read(half)
	if st, body := raw(2*int64(len(half)), half); !strings.HasPrefix(st, "400") || !strings.Contains(body, "changed size") {
		t.Fatalf("an upload cut half way: %s %s, want 400, changed size", st, body)
	}
	if st, body := raw(3<<30, half[:1000]); !strings.HasPrefix(st, "400") || !strings.Contains(body, "too large") {
		t.Fatalf("an upload over the largest file: %s %s, want 400 too large", st, body)
	}

	conv, err := ca.Messages(ctx, "Bob", 0)
	if err != nil || len(conv.Messages) != 0 {
		t.Fatalf("refused uploads left messages: %+v %v", conv.Messages, err)
	}
	if trs, err := ca.Files(ctx); err != nil || len(trs) != 0 {
		t.Fatalf("refused uploads left transfers: %+v %v", trs, err)
	}
	var left []string
	filepath.WalkDir(filepath.Join(na.Dir, "media"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Fatalf("refused uploads left %d files in the media directory: %v", len(left), left)
	}
	if _, err := os.Stat(filepath.Join(na.Dir, "media")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}
