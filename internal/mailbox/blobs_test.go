package mailbox

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func blobOf(b byte) []byte { return bytes.Repeat([]byte{b}, BlobSize) }

func blobID(b byte) Hash { var h Hash; h[0], h[31] = b, 0xB1; return h }

// TestBlobsPutGetDelete: blobs go in, are told held, come out as they
// went in, and are deleted; a blob of another mailbox is not given.
func TestBlobsPutGetDelete(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	ctx := testCtx(t)
	c := r.client(t)
	mb := KeyID(mustKey(t))
	conn, err := DialBlobs(ctx, c, r.node.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ids := []Hash{blobID(1), blobID(2), blobID(3)}
	if err := conn.Room(ctx, mb, len(ids)); err != nil {
		t.Fatalf("Room: %v", err)
	}
	n, err := conn.Put(ctx, mb, ids, func(i int) ([]byte, error) { return blobOf(byte(i + 1)), nil })
	if err != nil || n != 3 {
		t.Fatalf("Put: %d %v", n, err)
	}
	has, err := conn.Have(ctx, mb, []Hash{blobID(2), blobID(9), blobID(3)})
	if err != nil || !has[0] || has[1] || !has[2] {
		t.Fatalf("Have: %v %v", has, err)
	}
	b, err := conn.Get(ctx, mb, blobID(2))
	if err != nil || !bytes.Equal(b, blobOf(2)) {
		t.Fatalf("Get: %v", err)
	}
	other := KeyID(mustKey(t))
	if _, err := conn.Get(ctx, other, blobID(2)); !errors.Is(err, ErrNoBlob) {
		t.Fatalf("Get from another mailbox: %v", err)
	}
	if k, err := conn.Delete(ctx, mb, []Hash{blobID(1), blobID(2), blobID(8)}); err != nil || k != 2 {
		t.Fatalf("Delete: %d %v", k, err)
	}
	if _, err := conn.Get(ctx, mb, blobID(1)); !errors.Is(err, ErrNoBlob) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if r.srv.Stats().BlobsStored != 3 {
		t.Fatalf("BlobsStored %d", r.srv.Stats().BlobsStored)
	}
}

// TestBlobsOverQuota: a host refuses what is over its blob quotas, per
// mailbox and in total, with an answer that says so; Room tells it before
// anything is sent.
func TestBlobsOverQuota(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{BlobQuotas: Quotas{PerMailbox: 2 * BlobSize, Total: 3 * BlobSize}})
	ctx := testCtx(t)
	c := r.client(t)
	a, b := KeyID(mustKey(t)), KeyID(mustKey(t))
	conn, err := DialBlobs(ctx, c, r.node.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Room(ctx, a, 3); !errors.Is(err, ErrQuotaFull) || !errors.Is(err, ErrRefused) {
		t.Fatalf("Room for 3: %v", err)
	}
	n, err := conn.Put(ctx, a, []Hash{blobID(1), blobID(2), blobID(3)}, func(i int) ([]byte, error) { return blobOf(byte(i)), nil })
	if n != 2 || !errors.Is(err, ErrQuotaFull) {
		t.Fatalf("Put 3 into a quota of 2: %d %v", n, err)
	}
	t.Logf("refusal: %v", err)
	if n, err := conn.Put(ctx, b, []Hash{blobID(4), blobID(5)}, func(i int) ([]byte, error) { return blobOf(byte(i)), nil }); n != 1 || !errors.Is(err, ErrQuotaFull) {
		t.Fatalf("Put over the total: %d %v", n, err)
	}
	// The stream still works after refusals.
	if has, err := conn.Have(ctx, a, []Hash{blobID(1)}); err != nil || !has[0] {
		t.Fatalf("Have after refusals: %v %v", has, err)
	}
}

// TestBlobsExpire: blobs past the TTL are not given and are swept.
func TestBlobsExpire(t *testing.T) {
	clk := newClock()
	r := startRelay(t, nil, "", ServerConfig{Now: clk.Now, BlobTTL: time.Hour})
	ctx := testCtx(t)
	c := r.client(t)
	mb := KeyID(mustKey(t))
	conn, err := DialBlobs(ctx, c, r.node.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Put(ctx, mb, []Hash{blobID(1)}, func(int) ([]byte, error) { return blobOf(1), nil }); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	if _, err := conn.Get(ctx, mb, blobID(1)); !errors.Is(err, ErrNoBlob) {
		t.Fatalf("Get after the TTL: %v", err)
	}
	if n, err := r.srv.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep: %d %v", n, err)
	}
	if b, n, _ := r.st.BlobUsage(ctx, nil); b != 0 || n != 0 {
		t.Fatalf("after sweep: %d bytes, %d blobs", b, n)
	}
}

// TestBlobsSweptAtStart: a host started after blobs expired deletes them
// at once, not after its first sweep interval.
func TestBlobsSweptAtStart(t *testing.T) {
	clk := newClock()
	r := startRelay(t, nil, "", ServerConfig{Now: clk.Now, BlobTTL: time.Hour})
	ctx := testCtx(t)
	c := r.client(t)
	mb := KeyID(mustKey(t))
	conn, err := DialBlobs(ctx, c, r.node.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Put(ctx, mb, []Hash{blobID(1)}, func(int) ([]byte, error) { return blobOf(1), nil }); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	path := r.path
	r.close(t)
	clk.Add(2 * time.Hour)
	r2 := startRelay(t, nil, path, ServerConfig{Now: clk.Now, SweepInterval: time.Hour})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, n, err := r2.st.BlobUsage(ctx, nil)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired blob still held after restart: %d (%v)", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBlobsGetMany: a pipelined get brings every held blob in order and
// skips those not held.
func TestBlobsGetMany(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	ctx := testCtx(t)
	c := r.client(t)
	mb := KeyID(mustKey(t))
	conn, err := DialBlobs(ctx, c, r.node.PeerID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var ids []Hash
	for i := range 20 {
		ids = append(ids, blobID(byte(i)))
	}
	if _, err := conn.Put(ctx, mb, ids[:10], func(i int) ([]byte, error) { return blobOf(byte(i)), nil }); err != nil {
		t.Fatal(err)
	}
	var got []int
	err = conn.GetMany(ctx, mb, ids, func(i int, b []byte) error {
		if !bytes.Equal(b, blobOf(byte(i))) {
			t.Errorf("blob %d differs", i)
		}
		got = append(got, i)
		return nil
	})
	if err != nil || len(got) != 10 || got[9] != 9 {
		t.Fatalf("GetMany: %v %v", got, err)
	}
	// The stream is still usable.
	if _, err := conn.Get(ctx, mb, ids[3]); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkBlobsLoopback deposits and fetches a 16 MiB file's blobs (64)
// at a host on loopback: the MB/s is file bytes through the host.
func BenchmarkBlobsLoopback(b *testing.B) {
	r := startRelay(b, nil, "", ServerConfig{BlobQuotas: Quotas{PerMailbox: -1, Total: -1}})
	ctx := testCtx(b)
	c := r.client(b)
	const n = 64
	b.SetBytes(n * BlobSize)
	for it := range b.N {
		mb := KeyID(mustKey(b))
		ids := make([]Hash, n)
		for i := range ids {
			ids[i] = blobID(byte(i))
			ids[i][1] = byte(it)
		}
		conn, err := DialBlobs(ctx, c, r.node.PeerID())
		if err != nil {
			b.Fatal(err)
		}
		if k, err := conn.Put(ctx, mb, ids, func(i int) ([]byte, error) { return blobOf(byte(i)), nil }); err != nil || k != n {
			b.Fatal(k, err)
		}
		got := 0
		if err := conn.GetMany(ctx, mb, ids, func(int, []byte) error { got++; return nil }); err != nil || got != n {
			b.Fatal(got, err)
		}
		if k, err := conn.Delete(ctx, mb, ids); err != nil || k != n {
			b.Fatal(k, err)
		}
		conn.Close()
	}
}
