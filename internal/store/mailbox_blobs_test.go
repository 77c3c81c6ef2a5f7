package store

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestMailboxBlobs(t *testing.T) {
	ctx := context.Background()
	m := openMailboxTest(t, filepath.Join(t.TempDir(), "mb.db"))
	q := MailboxQuota{PerMailbox: 250, Total: 350}
	t0 := time.Unix(1_000_000, 0)
	body := bytes.Repeat([]byte{1}, 100)
	for i := byte(1); i <= 2; i++ {
		if r, err := m.BlobPut(ctx, mbID(1), mbID(i), body, t0.Add(time.Hour), q); err != nil || r != BlobStored {
			t.Fatalf("BlobPut %d: %v %v", i, r, err)
		}
	}
	if r, err := m.BlobPut(ctx, mbID(1), mbID(1), body, t0.Add(time.Hour), q); err != nil || r != BlobHeld {
		t.Fatalf("BlobPut again: %v %v", r, err)
	}
	if _, err := m.BlobPut(ctx, mbID(1), mbID(3), body, t0.Add(time.Hour), q); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("over the mailbox quota: %v", err)
	}
	if err := m.BlobRoom(ctx, mbID(1), 100, q); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("BlobRoom: %v", err)
	}
	if _, err := m.BlobPut(ctx, mbID(2), mbID(3), body, t0.Add(2*time.Hour), q); err != nil {
		t.Fatal(err)
	}
	if _, err := m.BlobPut(ctx, mbID(3), mbID(3), body, t0, q); !errors.Is(err, ErrStorageFull) {
		t.Fatalf("over the total quota: %v", err)
	}
	has, err := m.BlobHas(ctx, mbID(1), [][]byte{mbID(1), mbID(3), mbID(2)}, t0)
	if err != nil || !has[0] || has[1] || !has[2] {
		t.Fatalf("BlobHas: %v %v", has, err)
	}
	if b, err := m.BlobGet(ctx, mbID(1), mbID(2), t0); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("BlobGet: %v", err)
	}
	if _, err := m.BlobGet(ctx, mbID(2), mbID(2), t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("BlobGet of another mailbox's blob: %v", err)
	}
	if n, err := m.BlobDelete(ctx, mbID(1), [][]byte{mbID(1), mbID(9)}); err != nil || n != 1 {
		t.Fatalf("BlobDelete: %d %v", n, err)
	}
	if b, n, _ := m.BlobUsage(ctx, mbID(1)); b != 100 || n != 1 {
		t.Fatalf("usage after delete: %d bytes %d blobs", b, n)
	}
	// Expiry: the first mailbox's blob expires at +1h, the second's at +2h.
	if _, err := m.BlobGet(ctx, mbID(1), mbID(2), t0.Add(time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("BlobGet of an expired blob: %v", err)
	}
	if n, err := m.BlobSweep(ctx, t0.Add(90*time.Minute)); err != nil || n != 1 {
		t.Fatalf("BlobSweep: %d %v", n, err)
	}
	if b, n, _ := m.BlobUsage(ctx, nil); b != 100 || n != 1 {
		t.Fatalf("total after sweep: %d bytes %d blobs", b, n)
	}
	// Envelopes are untouched by blobs and count apart.
	if b, _, _ := m.TotalUsage(ctx); b != 0 {
		t.Fatalf("envelope usage %d", b)
	}
}
