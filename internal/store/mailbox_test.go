package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openMailboxTest(t testing.TB, path string) *MailboxStore {
	t.Helper()
	m, err := OpenMailboxStore(path, testKey(7))
	if err != nil {
		t.Fatalf("OpenMailboxStore: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mbID(b byte) []byte { return bytes.Repeat([]byte{b}, MailboxHashSize) }

func mbHash(env []byte) []byte { h := sha256.Sum256(env); return h[:] }

var mbFar = time.Unix(1<<40, 0)

func mbDeposit(t testing.TB, m *MailboxStore, id, env []byte, q MailboxQuota) bool {
	t.Helper()
	stored, err := m.Deposit(context.Background(), id, mbHash(env), env, mbFar, q)
	if err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	return stored
}

func TestMailboxDepositListDelete(t *testing.T) {
	ctx := context.Background()
	m := openMailboxTest(t, filepath.Join(t.TempDir(), "mailbox.db"))
	a, b := mbID(1), mbID(2)
	var envs [][]byte
	for i := range 5 {
		env := []byte(fmt.Sprintf("envelope %d", i))
		envs = append(envs, env)
		if !mbDeposit(t, m, a, env, MailboxQuota{}) {
			t.Fatalf("deposit %d not stored", i)
		}
	}
	if mbDeposit(t, m, a, envs[0], MailboxQuota{}) {
		t.Fatal("duplicate stored again")
	}
	if !mbDeposit(t, m, b, envs[0], MailboxQuota{}) {
		t.Fatal("same envelope for another mailbox not stored")
	}
	n, c, err := m.Usage(ctx, a)
	if err != nil || c != 5 || n != int64(5*len(envs[0])) {
		t.Fatalf("Usage = %d, %d, %v", n, c, err)
	}
	n, c, err = m.TotalUsage(ctx)
	if err != nil || c != 6 || n != int64(6*len(envs[0])) {
		t.Fatalf("TotalUsage = %d, %d, %v", n, c, err)
	}

	// Pages, oldest first.
	var got [][]byte
	var after int64
	for {
		page, more, err := m.List(ctx, a, MailboxQuery{After: after, Limit: 2, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			t.Fatal("empty page")
		}
		for _, e := range page {
			if !bytes.Equal(e.Hash, mbHash(e.Envelope)) {
				t.Fatal("hash does not match envelope")
			}
			got = append(got, e.Envelope)
			after = e.Seq
		}
		if !more {
			break
		}
	}
	if len(got) != 5 {
		t.Fatalf("listed %d envelopes, want 5", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], envs[i]) {
			t.Fatalf("envelope %d = %q, want %q", i, got[i], envs[i])
		}
	}
	// MaxBytes stops a page early but always returns one envelope.
	page, more, err := m.List(ctx, a, MailboxQuery{Limit: 10, MaxBytes: 1, Now: time.Now()})
	if err != nil || len(page) != 1 || !more {
		t.Fatalf("List with MaxBytes 1 = %d envelopes, %v, %v", len(page), more, err)
	}

	k, err := m.Delete(ctx, a, [][]byte{mbHash(envs[0]), mbHash(envs[1]), mbHash([]byte("unknown"))})
	if err != nil || k != 2 {
		t.Fatalf("Delete = %d, %v", k, err)
	}
	if _, c, _ := m.Usage(ctx, a); c != 3 {
		t.Fatalf("count after delete = %d", c)
	}
	if _, c, _ := m.Usage(ctx, b); c != 1 {
		t.Fatalf("other mailbox touched: count %d", c)
	}
	// A deleted envelope may be deposited again (a late retry): it is new.
	if !mbDeposit(t, m, a, envs[0], MailboxQuota{}) {
		t.Fatal("re-deposit after delete not stored")
	}
}

func TestMailboxQuotas(t *testing.T) {
	ctx := context.Background()
	m := openMailboxTest(t, filepath.Join(t.TempDir(), "mailbox.db"))
	env := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100) }
	q := MailboxQuota{PerMailbox: 250, Total: 450}
	mbDeposit(t, m, mbID(1), env(1), q)
	mbDeposit(t, m, mbID(1), env(2), q)
	if _, err := m.Deposit(ctx, mbID(1), mbHash(env(3)), env(3), mbFar, q); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("over mailbox quota: %v", err)
	}
	// A duplicate is accepted even when full: it is held already.
	if stored, err := m.Deposit(ctx, mbID(1), mbHash(env(2)), env(2), mbFar, q); err != nil || stored {
		t.Fatalf("duplicate at quota = %v, %v", stored, err)
	}
	mbDeposit(t, m, mbID(2), env(3), q)
	mbDeposit(t, m, mbID(2), env(4), q)
	if _, err := m.Deposit(ctx, mbID(3), mbHash(env(5)), env(5), mbFar, q); !errors.Is(err, ErrStorageFull) {
		t.Fatalf("over total quota: %v", err)
	}
	if n, c, _ := m.TotalUsage(ctx); n != 400 || c != 4 {
		t.Fatalf("TotalUsage = %d, %d", n, c)
	}
}

func TestMailboxConcurrentQuota(t *testing.T) {
	ctx := context.Background()
	m := openMailboxTest(t, filepath.Join(t.TempDir(), "mailbox.db"))
	q := MailboxQuota{PerMailbox: 1000}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			env := bytes.Repeat([]byte{byte(i)}, 100)
			_, err := m.Deposit(ctx, mbID(1), mbHash(env), env, mbFar, q)
			if err != nil && !errors.Is(err, ErrMailboxFull) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, c, _ := m.Usage(ctx, mbID(1)); n != 1000 || c != 10 {
		t.Fatalf("Usage = %d, %d; want exactly the quota", n, c)
	}
}

func TestMailboxSweep(t *testing.T) {
	ctx := context.Background()
	m := openMailboxTest(t, filepath.Join(t.TempDir(), "mailbox.db"))
	defer func(n int) { mailboxSweepBatch = n }(mailboxSweepBatch)
	mailboxSweepBatch = 7
	t0 := time.Unix(1_000_000, 0)
	for i := range 2*mailboxSweepBatch + 10 {
		env := []byte(fmt.Sprint("old ", i))
		if _, err := m.Deposit(ctx, mbID(1), mbHash(env), env, t0.Add(time.Hour), MailboxQuota{}); err != nil {
			t.Fatal(err)
		}
	}
	keep := []byte("new")
	if _, err := m.Deposit(ctx, mbID(1), mbHash(keep), keep, t0.Add(48*time.Hour), MailboxQuota{}); err != nil {
		t.Fatal(err)
	}
	// Expired but not yet swept: not listed.
	page, _, err := m.List(ctx, mbID(1), MailboxQuery{Limit: 10, Now: t0.Add(2 * time.Hour)})
	if err != nil || len(page) != 1 || !bytes.Equal(page[0].Envelope, keep) {
		t.Fatalf("List after expiry = %d, %v", len(page), err)
	}
	n, err := m.Sweep(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 2*mailboxSweepBatch+10 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	if n, c, _ := m.TotalUsage(ctx); c != 1 || n != int64(len(keep)) {
		t.Fatalf("TotalUsage after sweep = %d, %d", n, c)
	}
}

func TestMailboxReopenAndEncrypted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "mailbox.db")
	m, err := OpenMailboxStore(path, testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("PLAINTEXT-MARKER-4f1c9e")
	env := bytes.Repeat(marker, 50)
	mbDeposit(t, m, mbID(9), env, MailboxQuota{})
	// Look at the files while the database is open (WAL present), then
	// after close.
	checkFiles := func() {
		t.Helper()
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, marker) || bytes.Contains(b, sqliteMagic) {
				t.Fatalf("%s holds plaintext", e.Name())
			}
		}
	}
	checkFiles()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	checkFiles()

	if _, err := OpenMailboxStore(path, testKey(8)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	m = openMailboxTest(t, path)
	page, _, err := m.List(ctx, mbID(9), MailboxQuery{Limit: 10, Now: time.Now()})
	if err != nil || len(page) != 1 || !bytes.Equal(page[0].Envelope, env) {
		t.Fatalf("after reopen: %d envelopes, %v", len(page), err)
	}
}

func TestMailboxAndProfileDatabasesApart(t *testing.T) {
	dir := t.TempDir()
	mpath := filepath.Join(dir, "mailbox.db")
	m, err := OpenMailboxStore(mpath, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := Open(mpath, testKey(1)); !errors.Is(err, ErrNotDatabase) {
		t.Fatalf("Open(mailbox db) = %v, want ErrNotDatabase", err)
	}
	ppath := filepath.Join(dir, "samizdat.db")
	s, err := Open(ppath, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenMailboxStore(ppath, testKey(1)); !errors.Is(err, ErrNotDatabase) {
		t.Fatalf("OpenMailboxStore(profile db) = %v, want ErrNotDatabase", err)
	}
}

func TestMailboxInvalid(t *testing.T) {
	ctx := context.Background()
	m := openMailboxTest(t, filepath.Join(t.TempDir(), "mailbox.db"))
	if _, err := m.Deposit(ctx, []byte("short"), mbID(1), []byte("x"), mbFar, MailboxQuota{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short id: %v", err)
	}
	if _, err := m.Deposit(ctx, mbID(1), mbID(1), nil, mbFar, MailboxQuota{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty envelope: %v", err)
	}
	if _, _, err := m.List(ctx, mbID(1), MailboxQuery{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero limit: %v", err)
	}
	if _, err := m.Delete(ctx, mbID(1), [][]byte{{1}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short hash: %v", err)
	}
	m.Close()
	if _, err := m.Deposit(ctx, mbID(1), mbID(1), []byte("x"), mbFar, MailboxQuota{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
