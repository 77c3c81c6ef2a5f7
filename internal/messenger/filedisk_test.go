package messenger

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
)

// smallDisk mounts a tmpfs of size on a new directory for the test.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounts a small tmpfs for a full disk and needs root; skipped")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("running as root but cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// mediaNodeIn is a media node whose chunks live in dir.
func mediaNodeIn(t *testing.T, name, dir string) *tnode {
	return newNodeTuned(t, name, func(c *Config) {
		svc, err := media.New(media.Config{Dir: dir, Store: c.Store, Transport: c.Transport.(media.Transport),
			RetryInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Media = svc
	})
}

// filesIn lists the files under dir.
func filesIn(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestFileDiskFull (issue 16, bad input: disk full mid-transfer) on real
// nodes. Bob's media directory is a 2 MiB disk and alice sends him a
// 3 MiB file: his transfer stops with the disk's error, every chunk he
// holds is whole, and once the disk has room it resumes and completes.
// Alice, her own media directory full, cannot send a file: a clear error,
// no message, and none of its chunks left behind.
func TestFileDiskFull(t *testing.T) {
	ctx := context.Background()
	bobDisk := smallDisk(t, "2m")
	alice, _ := mediaNode(t, "alice")
	bob := mediaNodeIn(t, "bob", filepath.Join(bobDisk, "media"))
	addContact(t, alice, bob)
	path, data := writeRandom(t, 3<<20)
	msg, err := alice.m.SendFile(ctx, "bob", path, "")
	if err != nil {
		t.Fatal(err)
	}
	var tr media.Transfer
	eventually(t, 30*time.Second, "bob's transfer stops on the full disk", func() bool {
		tr = transferOf(t, bob, msg.ID)
		return tr.State == media.StateFailed && strings.Contains(tr.Error, "no space left")
	})
	if tr.Done == 0 || tr.Done == tr.Total {
		t.Fatalf("bob's transfer on the full disk: %+v, want part of it", tr)
	}
	man, err := bob.m.cfg.Media.Manifest(ctx, msg.ID)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := media.LoadIndex(bob.m.cfg.Media.Chunks(), man)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hashes {
		if bob.m.cfg.Media.Chunks().Has(h) {
			if _, err := bob.m.cfg.Media.Chunks().Get(h); err != nil {
				t.Fatalf("chunk %d is claimed but not whole: %v", i, err)
			}
		}
	}
	if err := bob.m.SaveFile(ctx, msg.ID, filepath.Join(t.TempDir(), "early")); !errors.Is(err, media.ErrIncomplete) {
		t.Fatalf("save while incomplete: %v", err)
	}
	if err := syscall.Mount("tmpfs", bobDisk, "tmpfs", syscall.MS_REMOUNT, "size=16m"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bob's transfer completes once there is room", func() bool {
		return transferOf(t, bob, msg.ID).State == media.StateComplete
	})
	out := filepath.Join(t.TempDir(), "saved")
	if err := bob.m.SaveFile(ctx, msg.ID, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("bob's file differs")
	}

	// The sender's disk full: nothing sent, nothing left.
	aliceDisk := smallDisk(t, "1m")
	carol := mediaNodeIn(t, "carol", filepath.Join(aliceDisk, "media"))
	addContact(t, carol, bob)
	if _, err := carol.m.SendFile(ctx, "bob", path, "the album"); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("send from a full disk: %v, want ENOSPC", err)
	}
	if ms := messages(t, carol, "bob"); len(ms) != 0 {
		t.Fatalf("a file that could not be sealed left %d messages", len(ms))
	}
	if left := filesIn(filepath.Join(aliceDisk, "media")); len(left) != 0 {
		t.Fatalf("a file that could not be sealed left %d chunk files: %v", len(left), left[:min(3, len(left))])
	}
}

// TestHostileFileName (issue 16, bad input: a path outside the save
// directory): a sender's manifest names its file "../../escape.txt". The
// receiver keeps the message, refuses the manifest (its transfer failed,
// saying why), writes nothing anywhere, and saving it is an error; a save
// onto an existing path (a directory) is refused too.
func TestHostileFileName(t *testing.T) {
	ctx := context.Background()
	alice, _ := mediaNode(t, "alice")
	bob, bobMedia := mediaNode(t, "bob")
	addContact(t, alice, bob)
	path, _ := writeRandom(t, 1000)
	man, err := alice.m.cfg.Media.Prepare(path)
	if err != nil {
		t.Fatal(err)
	}
	man.Name = "../../escape.txt"
	msg, err := alice.m.sendManifest(ctx, "bob", "look", man)
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, alice, "bob", msg.ID, StateDelivered)
	var tr media.Transfer
	eventually(t, 10*time.Second, "bob's transfer refuses the manifest", func() bool {
		tr = transferOf(t, bob, msg.ID)
		return tr.State == media.StateFailed
	})
	if !strings.Contains(tr.Error, "manifest") || tr.Name != "" {
		t.Fatalf("bob's transfer: %+v", tr)
	}
	if ms := messages(t, bob, "alice"); len(ms) != 1 || ms[0].Body != "look" {
		t.Fatalf("bob's messages: %+v", ms)
	}
	saveDir := t.TempDir()
	if err := bob.m.SaveFile(ctx, msg.ID, filepath.Join(saveDir, "x")); !errors.Is(err, media.ErrBadManifest) {
		t.Fatalf("save of a hostile manifest: %v, want ErrBadManifest", err)
	}
	for _, d := range []string{saveDir, filepath.Dir(saveDir), filepath.Dir(filepath.Dir(saveDir))} {
		if _, err := os.Stat(filepath.Join(d, "escape.txt")); err == nil {
			t.Fatalf("a file escaped to %s", d)
		}
	}
	if left := filesIn(bobMedia); len(left) != 0 {
		t.Fatalf("bob fetched %d chunks of a refused file", len(left))
	}
	// A save onto a directory that exists is refused, not written into.
	good, _ := writeRandom(t, 1000)
	ok, err := alice.m.SendFile(ctx, "bob", good, "")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob has the second file", func() bool {
		return transferOf(t, bob, ok.ID).State == media.StateComplete
	})
	if err := bob.m.SaveFile(ctx, ok.ID, saveDir); !errors.Is(err, media.ErrExists) {
		t.Fatalf("save onto a directory: %v, want ErrExists", err)
	}
	if ents, _ := os.ReadDir(saveDir); len(ents) != 0 {
		t.Fatalf("a refused save wrote %d files into the directory", len(ents))
	}
}
