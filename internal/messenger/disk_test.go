package messenger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// TestFullDisk runs a sender on a tiny tmpfs, fills it, and checks that
// Send fails with an error (not a crash), that every message Send accepted
// is still there and gets delivered, and that sending works again once
// space is freed. Mounting needs root.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestFullDisk mounts a small tmpfs and needs root; skipped")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		// As root the mount must work: a skip here would hide that the
		// full-disk path is not tested at all (issue 13).
		t.Fatalf("running as root but cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })

	bob := newNode(t, "bob")
	alice := &tnode{t: t, name: "alice", dir: dir, key: make([]byte, store.KeySize)}
	var err error
	if alice.priv, _, err = p2p.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "db"), alice.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := InitProfile(context.Background(), st, "alice", nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	alice.start()
	t.Cleanup(alice.stop)
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	bob.pinAddr()
	bob.stop() // messages pile up in alice's outbox

	// Leave little room, then send until the disk is full.
	var fs syscall.Statfs_t
	syscall.Statfs(dir, &fs)
	free := int64(fs.Bavail) * fs.Bsize
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, free-600<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("full disk test ", 4000) // 60 KB
	var sent []string
	var sendErr error
	for i := 0; i < 200 && sendErr == nil; i++ {
		var m store.Message
		m, sendErr = alice.m.Send(context.Background(), "bob", body)
		if sendErr == nil {
			sent = append(sent, m.ID)
		}
	}
	if !errors.Is(sendErr, store.ErrDiskFull) {
		t.Fatalf("send on a full disk: %v, want ErrDiskFull", sendErr)
	}
	t.Logf("%d messages queued, then: %v", len(sent), sendErr)
	if len(sent) == 0 {
		t.Fatal("no message fit at all")
	}
	// Nothing accepted was lost.
	if got := messages(t, alice, "bob"); len(got) != len(sent) {
		t.Fatalf("alice has %d messages, Send accepted %d", len(got), len(sent))
	}
	// Space again: sending works and everything is delivered.
	os.Remove(filler)
	m := send(t, alice, "bob", "after the disk was freed")
	bob.start()
	for _, id := range append(sent, m.ID) {
		eventually(t, 30*time.Second, "delivery after the disk was freed", func() bool {
			return stateOf(t, alice, "bob", id) == StateDelivered
		})
	}
	if got := messages(t, bob, "alice"); len(got) != len(sent)+1 {
		t.Fatalf("bob has %d messages, want %d", len(got), len(sent)+1)
	}
}
