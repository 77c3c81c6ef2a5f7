package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// tinyDisk mounts a tmpfs of size bytes on a new directory, unmounted
// when the test ends. Mounting needs root.
func tinyDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounts a small tmpfs for a full disk and needs root; skipped")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		// As root the mount must work: a skip would hide that the
		// full-disk path is not tested.
		t.Fatalf("running as root but cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestFetchDiskFull (issue 16, bad input): the disk fills mid-transfer.
// The fetch fails with the disk's error, every chunk the store then
// claims is whole and verified (nothing half-written counts), and once
// there is room the fetch resumes without fetching those chunks again.
// Saving onto a full disk fails and leaves no file behind.
func TestFetchDiskFull(t *testing.T) {
	dir := tinyDisk(t, "2m")
	data := make([]byte, 12*ChunkSize+99) // ~3 MiB sealed: more than the disk
	rand.Read(data)
	src, m := seal(t, data)
	net := newMemNet()
	net.sources["alice"] = src
	dst, err := OpenChunks(filepath.Join(dir, "media"))
	if err != nil {
		t.Fatal(err)
	}
	err = Fetch(context.Background(), net, dst, m, []string{"alice"}, nil)
	net.wg.Wait()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fetch onto a full disk: %v, want ENOSPC", err)
	}
	hashes, err := LoadIndex(dst, m)
	if err != nil {
		t.Fatalf("the index after the disk filled: %v", err)
	}
	_, missing, err := Missing(dst, m)
	if err != nil || len(missing) == 0 || len(missing) == len(hashes) {
		t.Fatalf("%d of %d chunks missing after the disk filled (%v): want some held, some not", len(missing), len(hashes), err)
	}
	held := 0
	for _, h := range hashes {
		if !dst.Has(h) {
			continue
		}
		held++
		if _, err := dst.Get(h); err != nil { // Get checks the hash
			t.Fatalf("chunk %s is claimed but does not read back whole: %v", h, err)
		}
	}
	if held != len(hashes)-len(missing) {
		t.Fatalf("%d chunks held, Missing says %d of %d", held, len(missing), len(hashes))
	}

	// Room again (the tmpfs grows, as after deleting something).
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size=16m"); err != nil {
		t.Fatal(err)
	}
	net.served = map[string]int{}
	if err := Fetch(context.Background(), net, dst, m, []string{"alice"}, nil); err != nil {
		t.Fatalf("fetch once there is room: %v", err)
	}
	net.wg.Wait()
	if net.served["alice"] != len(missing) {
		t.Errorf("the resumed fetch took %d chunks, %d were missing", net.served["alice"], len(missing))
	}

	// Saving onto a full disk: an error, and no file that looks complete.
	full := tinyDisk(t, "1m")
	out := filepath.Join(full, "photo.bin")
	if err := Save(dst, m, out); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("save onto a full disk: %v, want ENOSPC", err)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 0 {
		t.Fatalf("a failed save left %d files behind (%s …)", len(ents), ents[0].Name())
	}
	good := filepath.Join(t.TempDir(), "photo.bin")
	if err := Save(dst, m, good); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(good); !bytes.Equal(got, data) {
		t.Fatal("saved file differs")
	}
}
