package messenger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
)

// mediaNode is a test node that carries files, its chunks in dir (kept
// across restarts).
func mediaNode(t testing.TB, name string) (*tnode, string) {
	return mediaNodeMax(t, name, 0)
}

func mediaNodeMax(t testing.TB, name string, maxSize int64) (*tnode, string) {
	dir := t.TempDir()
	tn := newNodeTuned(t, name, func(c *Config) {
		svc, err := media.New(media.Config{Dir: dir, Store: c.Store, Transport: c.Transport.(media.Transport),
			RetryInterval: 100 * time.Millisecond, MaxFileSize: maxSize})
		if err != nil {
			t.Fatal(err)
		}
		c.Media = svc
	})
	return tn, dir
}

func transferOf(t testing.TB, n *tnode, msgID string) media.Transfer {
	t.Helper()
	ts, err := n.m.Transfers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range ts {
		if tr.MessageID == msgID {
			return tr
		}
	}
	return media.Transfer{}
}

func writeRandom(t testing.TB, size int) (string, []byte) {
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), "photo album.bin")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func TestSendFileTwoNodes(t *testing.T) {
	alice, _ := mediaNode(t, "alice")
	bob, _ := mediaNode(t, "bob")
	addContact(t, alice, bob)
	ctx := context.Background()
	path, data := writeRandom(t, 5<<20)
	msg, err := alice.m.SendFile(ctx, "bob", path, "the album")
	if err != nil {
		t.Fatal(err)
	}
	// A text sent right after the file is delivered on its own stream.
	txt := send(t, alice, "bob", "did it arrive?")
	waitState(t, alice, "bob", txt.ID, StateDelivered)
	waitState(t, alice, "bob", msg.ID, StateDelivered)
	eventually(t, 30*time.Second, "bob has the file", func() bool {
		return transferOf(t, bob, msg.ID).State == media.StateComplete
	})
	tr := transferOf(t, bob, msg.ID)
	if tr.Name != "photo album.bin" || tr.Size != 5<<20 || !tr.Incoming || tr.Done != tr.Total || tr.Total != 20 {
		t.Errorf("bob's transfer: %+v", tr)
	}
	if out := transferOf(t, alice, msg.ID); out.State != media.StateSending || out.Incoming {
		t.Errorf("alice's transfer: %+v", out)
	}
	out := filepath.Join(t.TempDir(), "saved")
	if err := bob.m.SaveFile(ctx, msg.ID, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's copy differs from alice's file (%v)", err)
	}
	var caption string
	for _, m := range messages(t, bob, "alice") {
		if m.ID == msg.ID {
			caption = m.Body
		}
	}
	if caption != "the album" {
		t.Errorf("caption %q", caption)
	}
}

func TestSendFileBadInput(t *testing.T) {
	alice, _ := mediaNode(t, "alice")
	bob := newNode(t, "bob")
	addContact(t, alice, bob)
	ctx := context.Background()
	if _, err := alice.m.SendFile(ctx, "bob", filepath.Join(t.TempDir(), "nope"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := alice.m.SendFile(ctx, "carol", filepath.Join(t.TempDir(), "nope"), ""); !errors.Is(err, ErrUnknownContact) {
		t.Errorf("unknown contact: %v", err)
	}
	if _, err := bob.m.SendFile(ctx, "alice", "x", ""); !errors.Is(err, ErrNoMedia) {
		t.Errorf("node without media: %v", err)
	}
	if err := alice.m.SaveFile(ctx, "00112233445566778899aabbccddeeff", filepath.Join(t.TempDir(), "x")); !errors.Is(err, media.ErrNoTransfer) {
		t.Errorf("save of no file: %v", err)
	}
}

func TestSendFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	alice := newNodeTuned(t, "alice", func(c *Config) {
		svc, err := media.New(media.Config{Dir: dir, Store: c.Store, Transport: c.Transport.(media.Transport), MaxFileSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		c.Media = svc
	})
	bob := newNode(t, "bob")
	addContact(t, alice, bob)
	path, _ := writeRandom(t, 1001)
	if _, err := alice.m.SendFile(context.Background(), "bob", path, ""); !errors.Is(err, media.ErrTooLarge) {
		t.Fatalf("file over the limit: %v", err)
	}
	if ms := messages(t, alice, "bob"); len(ms) != 0 {
		t.Fatalf("a refused file left %d messages", len(ms))
	}
}

// TestReceiveFileTooLarge: a node does not fetch a file over its own
// limit, and says so; the message itself arrives.
func TestReceiveFileTooLarge(t *testing.T) {
	alice, _ := mediaNode(t, "alice")
	bob, _ := mediaNodeMax(t, "bob", 4000)
	addContact(t, alice, bob)
	path, _ := writeRandom(t, 5000)
	msg, err := alice.m.SendFile(context.Background(), "bob", path, "big")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, alice, "bob", msg.ID, StateDelivered)
	eventually(t, 10*time.Second, "bob refuses the file", func() bool {
		tr := transferOf(t, bob, msg.ID)
		return tr.State == media.StateFailed && tr.Done == 0 && strings.Contains(tr.Error, "too large")
	})
}

// TestSendFileResume: the sender holds only the first half of the chunks
// (as if it went away mid-transfer); the receiver keeps what it verified,
// is restarted, and fetches only the rest once the sender has it again.
func TestSendFileResume(t *testing.T) {
	alice, adir := mediaNode(t, "alice")
	bob, _ := mediaNode(t, "bob")
	addContact(t, alice, bob)
	ctx := context.Background()
	path, data := writeRandom(t, 8*media.ChunkSize)

	bob.pinAddr()
	bob.stop() // offline until alice's chunks are half hidden
	msg, err := alice.m.SendFile(ctx, "bob", path, "")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := alice.m.cfg.Media.Manifest(ctx, msg.ID)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := media.LoadIndex(alice.m.cfg.Media.Chunks(), sent)
	if err != nil {
		t.Fatal(err)
	}
	// Hide the second half of alice's chunks.
	hidden := t.TempDir()
	move := func(from, to string) {
		for _, h := range hashes[4:] {
			x := h.String()
			os.MkdirAll(filepath.Join(to, x[:2]), 0o700)
			if err := os.Rename(filepath.Join(from, x[:2], x), filepath.Join(to, x[:2], x)); err != nil {
				t.Fatal(err)
			}
		}
	}
	move(adir, hidden)
	bob.start()
	eventually(t, 30*time.Second, "bob stops at half", func() bool {
		tr := transferOf(t, bob, msg.ID)
		return tr.State == media.StateFailed && tr.Done == 4
	})
	if err := bob.m.SaveFile(ctx, msg.ID, filepath.Join(t.TempDir(), "x")); !errors.Is(err, media.ErrIncomplete) {
		t.Fatalf("save of a partial file: %v", err)
	}
	bob.stop()
	bob.start()
	if tr := transferOf(t, bob, msg.ID); tr.Done != 4 || tr.Total != 8 {
		t.Fatalf("after the restart bob holds %d of %d chunks", tr.Done, tr.Total)
	}
	move(hidden, adir)
	eventually(t, 30*time.Second, "bob completes the file", func() bool {
		return transferOf(t, bob, msg.ID).State == media.StateComplete
	})
	out := filepath.Join(t.TempDir(), "saved")
	if err := bob.m.SaveFile(ctx, msg.ID, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("bob's copy differs")
	}
}
