package messenger

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
)

// TestStoppedTransferRetriedWhenSourceConnects: a file transfer that
// stopped because its sender went away is tried again as soon as the
// sender connects (here: it comes back and writes), not at the next
// retry round, which is an hour away in this test.
func TestStoppedTransferRetriedWhenSourceConnects(t *testing.T) {
	alice, adir := mediaNode(t, "alice")
	bdir := t.TempDir()
	bob := newNodeTuned(t, "bob", func(c *Config) {
		svc, err := media.New(media.Config{Dir: bdir, Store: c.Store, Transport: c.Transport.(media.Transport), RetryInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c.Media = svc
	})
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	ctx := context.Background()
	path, _ := writeRandom(t, 4*media.ChunkSize)

	alice.pinAddr()
	bob.pinAddr()
	bob.stop()
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
	hidden := t.TempDir()
	move := func(from, to string) {
		for _, h := range hashes {
			x := h.String()
			os.MkdirAll(filepath.Join(to, x[:2]), 0o700)
			if err := os.Rename(filepath.Join(from, x[:2], x), filepath.Join(to, x[:2], x)); err != nil {
				t.Fatal(err)
			}
		}
	}
	move(adir, hidden) // alice has none of the file's chunks to give
	bob.start()
	eventually(t, 30*time.Second, "bob's transfer stops", func() bool {
		return transferOf(t, bob, msg.ID).State == media.StateFailed
	})
	alice.stop()
	move(hidden, adir)
	alice.start()
	send(t, alice, "bob", "I am back") // alice connects to bob
	eventually(t, 30*time.Second, "bob completes the file", func() bool {
		return transferOf(t, bob, msg.ID).State == media.StateComplete
	})
}
