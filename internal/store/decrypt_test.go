package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// DecryptFile shows what the key holder reads: a deposited envelope is in
// it (and not in the file on disk), and a wrong key is refused.
func TestDecryptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.db")
	m, err := OpenMailboxStore(path, testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	env := bytes.Repeat([]byte("visible to the operator "), 20)
	if _, err := m.Deposit(context.Background(), mbID(1), mbHash(env), env, mbFar, MailboxQuota{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, env[:24]) {
		t.Fatal("the envelope is in the clear on disk")
	}
	plain, err := DecryptFile(path, testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(plain, env) || !bytes.HasPrefix(plain, sqliteMagic) || len(plain) != len(raw) {
		t.Fatalf("the decrypted file lacks the envelope or the header (%d bytes)", len(plain))
	}
	if _, err := DecryptFile(path, testKey(8)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v, want ErrWrongKey", err)
	}
}
