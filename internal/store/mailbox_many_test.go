package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestMailboxDepositMany checks a batch's results one by one: stored, a
// duplicate of an earlier envelope of the same batch, a malformed one, and
// one past the mailbox quota (refused, the rest of the batch still
// stored), and that the usage counts exactly what was stored.
func TestMailboxDepositMany(t *testing.T) {
	ctx := context.Background()
	m := openMailboxTest(t, filepath.Join(t.TempDir(), "mailbox.db"))
	a, b := mbID(1), mbID(2)
	env := func(s string) MailboxDeposit {
		return MailboxDeposit{MailboxID: a, Hash: mbHash([]byte(s)), Envelope: []byte(s), Expires: mbFar}
	}
	big := env("a big one, past the quota of the mailbox")
	other := MailboxDeposit{MailboxID: b, Hash: mbHash([]byte("for b")), Envelope: []byte("for b"), Expires: mbFar}
	ds := []MailboxDeposit{env("one"), env("two"), env("one"), {MailboxID: a[:5], Hash: mbHash([]byte("x")), Envelope: []byte("x")}, big, other, env("six")}
	res, err := m.DepositMany(ctx, ds, MailboxQuota{PerMailbox: 20})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		stored bool
		err    error
	}{{true, nil}, {true, nil}, {false, nil}, {false, ErrInvalid}, {false, ErrMailboxFull}, {true, nil}, {true, nil}}
	for i, w := range want {
		if res[i].Stored != w.stored || (w.err == nil) != (res[i].Err == nil) || (w.err != nil && !errors.Is(res[i].Err, w.err)) {
			t.Errorf("deposit %d: stored %v err %v, want %v %v", i, res[i].Stored, res[i].Err, w.stored, w.err)
		}
	}
	n, c, err := m.Usage(ctx, a)
	if err != nil || c != 3 || n != int64(len("one")+len("two")+len("six")) {
		t.Fatalf("usage of a: %d bytes, %d envelopes, %v", n, c, err)
	}
	if _, c, _ := m.Usage(ctx, b); c != 1 {
		t.Fatalf("usage of b: %d envelopes", c)
	}
}
