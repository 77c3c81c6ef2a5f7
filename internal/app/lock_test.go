package app

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lockTestProfile(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "p")
	if _, err := Init(context.Background(), dir, "p", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func setLockWait(t *testing.T, d time.Duration) {
	old := lockWait
	lockWait = d
	t.Cleanup(func() { lockWait = old })
}

func setOnLockBusy(t *testing.T, f func()) {
	onLockBusy = f
	t.Cleanup(func() { onLockBusy = nil })
}

// A node that starts while a short command holds the profile waits for
// the command instead of failing (issue 13: `samizdat up & samizdat
// status` killed the daemon).
func TestStartWaitsForACommand(t *testing.T) {
	ctx := context.Background()
	dir := lockTestProfile(t)
	setLockWait(t, time.Hour) // a test timeout, not a failure, if it waits for nothing
	o, err := OpenOffline(ctx, dir, KeySource{})
	if err != nil {
		t.Fatal(err)
	}
	busy := make(chan struct{})
	setOnLockBusy(t, func() { close(busy) })
	type result struct {
		n   *Node
		err error
	}
	started := make(chan result, 1)
	go func() {
		n, err := Start(ctx, Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true})
		started <- result{n, err}
	}()
	select {
	case <-busy: // the node found the command's lock and waits
	case r := <-started:
		t.Fatalf("Start while a command holds the profile returned %v, want it to wait", r.err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-started
	if r.err != nil {
		t.Fatalf("Start after the command: %v", r.err)
	}
	defer r.n.Close()
	// Now a command is refused by the running node's lock (the CLI then
	// goes through its API), and a second node is refused at once.
	if _, err := OpenOffline(ctx, dir, KeySource{}); !errors.Is(err, ErrLocked) {
		t.Errorf("OpenOffline while a node runs: %v, want ErrLocked", err)
	}
	setOnLockBusy(t, func() { t.Error("a second node waited instead of being refused") })
	_, err = Start(ctx, Options{Dir: dir, APIAddr: "-", LoopbackOnly: true})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("second Start: %v, want ErrLocked (a node already runs)", err)
	}
}

// A command that does not let go within lockWait: the node gives up with
// ErrLocked, and releases the daemon lock for the next try.
func TestStartGivesUpOnAStuckCommand(t *testing.T) {
	ctx := context.Background()
	dir := lockTestProfile(t)
	setLockWait(t, 50*time.Millisecond)
	o, err := OpenOffline(ctx, dir, KeySource{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(ctx, Options{Dir: dir, APIAddr: "-", LoopbackOnly: true})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "a command still holds it") {
		t.Fatalf("Start with a stuck command: %v", err)
	}
	o.Close()
	n, err := Start(ctx, Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true})
	if err != nil {
		t.Fatalf("Start after the command ended: %v", err)
	}
	n.Close()
}
