package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var ctx = context.Background()

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func openTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, testKey(1))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newTest(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "samizdat.db")
	return openTest(t, path), path
}

func update(t testing.TB, s *Store, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.Update(ctx, fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t testing.TB, s *Store, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.View(ctx, fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func addContact(t testing.TB, s *Store, account, name string) int64 {
	t.Helper()
	c := &Contact{AccountID: account, Name: name}
	update(t, s, func(tx *Tx) error { return tx.AddContact(c) })
	return c.ID
}

// dirState hashes every file of dir, to prove an operation left it alone.
func dirState(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][32]byte)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

func sameState(t *testing.T, before, after map[string][32]byte) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("files changed: %d before, %d after", len(before), len(after))
	}
	for name, h := range before {
		if after[name] != h {
			t.Fatalf("%s changed", name)
		}
	}
}

func TestOpenCloseReopen(t *testing.T) {
	s, path := newTest(t)
	created := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	c := &Contact{AccountID: "acc1", Name: "Alice", Card: []byte{1, 2, 3}, PeerID: "peer1",
		Addrs: []string{"/ip4/127.0.0.1/tcp/1", "/dns/x/tcp/443/wss"}, Verified: true, Created: created}
	update(t, s, func(tx *Tx) error {
		if err := tx.PutBlob("identity", []byte("secret")); err != nil {
			return err
		}
		if err := tx.AddContact(c); err != nil {
			return err
		}
		if err := tx.PutSession(c.ID, []byte("ratchet")); err != nil {
			return err
		}
		_, err := tx.InsertMessage(&Message{ID: "m1", ContactID: c.ID, Body: "hi", SentAt: created, At: created})
		return err
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("db file mode: %v %v", fi.Mode(), err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WAL left after Close: %v", err)
	}

	s = openTest(t, path)
	view(t, s, func(tx *Tx) error {
		b, err := tx.Blob("identity")
		if err != nil || string(b) != "secret" {
			t.Errorf("Blob = %q, %v", b, err)
		}
		got, err := tx.Contact(c.ID)
		if err != nil {
			return err
		}
		if fmt.Sprint(*got) != fmt.Sprint(*c) || !got.Created.Equal(created) {
			t.Errorf("Contact = %+v, want %+v", *got, *c)
		}
		st, err := tx.Session(c.ID)
		if err != nil || string(st) != "ratchet" {
			t.Errorf("Session = %q, %v", st, err)
		}
		m, err := tx.Message(c.ID, false, "m1")
		if err != nil {
			return err
		}
		if m.Body != "hi" || !m.SentAt.Equal(created) || !m.At.Equal(created) || m.State != StateReceived || m.Seq != 1 {
			t.Errorf("Message = %+v", *m)
		}
		return nil
	})
}

func TestOpenInvalid(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "a.db"), make([]byte, 16)); !errors.Is(err, ErrInvalid) {
		t.Errorf("short key: %v", err)
	}
	if _, err := Open("", testKey(1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty path: %v", err)
	}
}

func TestWrongKey(t *testing.T) {
	s, path := newTest(t)
	addContact(t, s, "acc", "Bob")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	before := dirState(t, dir)
	_, err := Open(path, testKey(2))
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with wrong key = %v, want ErrWrongKey", err)
	}
	sameState(t, before, dirState(t, dir))

	// The right key still works afterwards.
	s = openTest(t, path)
	view(t, s, func(tx *Tx) error { _, err := tx.ContactByName("bob"); return err })
}

func TestNotDatabase(t *testing.T) {
	dir := t.TempDir()

	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("just some text\n"), 0o600)

	// An unencrypted SQLite database, as another program would leave it.
	plain := filepath.Join(dir, "plain.db")
	ps, err := open(plain, testKey(1), "os")
	if err != nil {
		t.Fatal(err)
	}
	ps.Close()

	for _, path := range []string{text, plain, dir} {
		before := dirState(t, dir)
		if _, err := Open(path, testKey(1)); !errors.Is(err, ErrNotDatabase) {
			t.Errorf("Open(%s) = %v, want ErrNotDatabase", filepath.Base(path), err)
		}
		sameState(t, before, dirState(t, dir))
	}

	// Random whole pages cannot be told from a wrong key: documented.
	noise := filepath.Join(dir, "noise")
	os.WriteFile(noise, bytes.Repeat([]byte{0x5a, 0xa5, 0x17}, 4096), 0o600)
	if _, err := Open(noise, testKey(1)); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Open(noise) = %v, want ErrWrongKey", err)
	}
}

func TestNoPlaintextOnDisk(t *testing.T) {
	const bodyMarker = "zebra-quokka-7f3a91-body"
	const nameMarker = "Xylophonist-c0ffee"
	for _, tc := range []struct {
		vfs       string
		wantClean bool
	}{
		{encryptedVFS, true},
		{"os", false}, // control: without encryption the check must see the markers
	} {
		t.Run(tc.vfs, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "samizdat.db")
			s, err := open(path, testKey(3), tc.vfs)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c := &Contact{AccountID: "acc-x", Name: nameMarker}
			update(t, s, func(tx *Tx) error {
				if err := tx.AddContact(c); err != nil {
					return err
				}
				for i := range 50 {
					m := &Message{ID: fmt.Sprint(i), ContactID: c.ID, Outgoing: true,
						Body: fmt.Sprintf("message %d says %s", i, bodyMarker)}
					if _, err := tx.InsertMessage(m); err != nil {
						return err
					}
				}
				return nil
			})
			found := func() bool {
				var all []byte
				for _, suffix := range []string{"", "-wal", "-journal"} {
					b, err := os.ReadFile(path + suffix)
					if err != nil && !errors.Is(err, os.ErrNotExist) {
						t.Fatal(err)
					}
					all = append(all, b...)
				}
				return bytes.Contains(all, []byte(bodyMarker)) || bytes.Contains(all, []byte(nameMarker))
			}
			// While open the data sits in the WAL, after Close in the main file.
			if got := found(); got == tc.wantClean {
				t.Errorf("while open: markers on disk = %v", got)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := found(); got == tc.wantClean {
				t.Errorf("after close: markers on disk = %v", got)
			}
		})
	}
}

func TestMigrations(t *testing.T) {
	if len(migrations) == 0 {
		t.Fatal("no migrations embedded")
	}
	s, path := newTest(t)
	version := func(s *Store) int {
		var v int
		if err := s.w.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := version(s); v != len(migrations) {
		t.Fatalf("user_version = %d, want %d", v, len(migrations))
	}
	var appID int
	s.w.QueryRow(`PRAGMA application_id`).Scan(&appID)
	if appID != applicationID {
		t.Fatalf("application_id = %#x", appID)
	}
	// Applying again changes nothing.
	for range 2 {
		if err := migrate(ctx, s.w, migrations); err != nil {
			t.Fatalf("migrate again: %v", err)
		}
	}
	if v := version(s); v != len(migrations) {
		t.Fatalf("user_version after re-migrate = %d", v)
	}
	s.Close()
	s = openTest(t, path) // reopen: no error, same version
	if v := version(s); v != len(migrations) {
		t.Fatalf("user_version after reopen = %d", v)
	}

	// A database from a newer samizdat is refused, untouched.
	if _, err := s.w.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := dirState(t, filepath.Dir(path))
	if _, err := Open(path, testKey(1)); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open newer schema = %v, want ErrSchemaTooNew", err)
	}
	sameState(t, before, dirState(t, filepath.Dir(path)))
}

func TestMigrationFailureRollsBack(t *testing.T) {
	s, _ := newTest(t)
	steps := append(append([]string{}, migrations...), `CREATE TABLE extra (x); SELECT no_such_function();`)
	if err := migrate(ctx, s.w, steps); err == nil {
		t.Fatal("broken migration succeeded")
	}
	var n, v int
	s.w.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'extra'`).Scan(&n)
	s.w.QueryRow(`PRAGMA user_version`).Scan(&v)
	if n != 0 || v != len(migrations) {
		t.Fatalf("after failed migration: extra table %d, user_version %d", n, v)
	}
}

func TestUpdateErrorRollsBack(t *testing.T) {
	s, _ := newTest(t)
	errBoom := errors.New("boom")
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.PutBlob("k", []byte("v")); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	if !errors.Is(err, errBoom) || err.Error() != "wrapped: boom" {
		t.Fatalf("Update = %v, want the callback's error unchanged", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		s.Update(ctx, func(tx *Tx) error {
			tx.PutBlob("k", []byte("v"))
			panic("bug")
		})
	}()
	view(t, s, func(tx *Tx) error {
		if _, err := tx.Blob("k"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Blob after rollback: %v", err)
		}
		return nil
	})
	// The writer connection is usable after both.
	update(t, s, func(tx *Tx) error { return tx.PutBlob("k", nil) })
	view(t, s, func(tx *Tx) error {
		b, err := tx.Blob("k")
		if err != nil || len(b) != 0 {
			t.Errorf("empty blob = %q, %v", b, err)
		}
		return nil
	})
}

func TestViewIsReadOnly(t *testing.T) {
	s, _ := newTest(t)
	if err := s.View(ctx, func(tx *Tx) error { return tx.PutBlob("k", []byte("v")) }); err == nil {
		t.Fatal("write inside View succeeded")
	}
}

func TestClosed(t *testing.T) {
	s, _ := newTest(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v", err)
	}
	if err := s.View(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("View after Close = %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	s, _ := newTest(t)
	c := addContact(t, s, "a", "A")
	const workers, each = 8, 25
	errs := make(chan error, 2*workers)
	for w := range workers {
		go func() {
			var err error
			for i := 0; i < each && err == nil; i++ {
				err = s.Update(ctx, func(tx *Tx) error {
					id := fmt.Sprintf("%d-%d", w, i)
					if _, err := tx.InsertMessage(&Message{ID: id, ContactID: c, Outgoing: true, Body: id}); err != nil {
						return err
					}
					if err := tx.PutSession(c, []byte(id)); err != nil {
						return err
					}
					return tx.Enqueue(OutboxItem{MessageID: id, ContactID: c, Payload: []byte(id)})
				})
			}
			errs <- err
		}()
		go func() { // readers alongside
			var err error
			for i := 0; i < each && err == nil; i++ {
				err = s.View(ctx, func(tx *Tx) error {
					_, err := tx.Messages(c, 0, 10)
					return err
				})
			}
			errs <- err
		}()
	}
	for range 2 * workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	view(t, s, func(tx *Tx) error {
		ms, err := tx.Messages(c, 0, 0)
		items, err2 := tx.Outbox(c)
		if err != nil || err2 != nil || len(ms) != workers*each || len(items) != workers*each {
			t.Errorf("after concurrent updates: %d messages, %d outbox (%v, %v)", len(ms), len(items), err, err2)
		}
		return nil
	})
}

func TestContextCanceled(t *testing.T) {
	s, _ := newTest(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Update(cctx, func(*Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Update(canceled) = %v", err)
	}
}

func TestDeriveKey(t *testing.T) {
	t.Parallel() // argon2id is slow under -race
	salt, err := NewSalt()
	if err != nil || len(salt) != SaltSize {
		t.Fatalf("NewSalt = %x, %v", salt, err)
	}
	start := time.Now()
	k1 := DeriveKey([]byte("correct horse"), salt)
	t.Logf("DeriveKey took %v", time.Since(start))
	if len(k1) != KeySize {
		t.Fatalf("key size %d", len(k1))
	}
	if !bytes.Equal(k1, DeriveKey([]byte("correct horse"), salt)) {
		t.Error("DeriveKey not deterministic")
	}
	salt2, _ := NewSalt()
	if bytes.Equal(salt, salt2) || bytes.Equal(k1, DeriveKey([]byte("correct horse"), salt2)) {
		t.Error("salt has no effect")
	}
}

// TestCrashWithWAL opens a copy of a live database (main file + WAL, as a
// crash leaves them): a wrong key must leave both files alone, and the
// right key must recover every committed write from the WAL.
func TestCrashWithWAL(t *testing.T) {
	s, path := newTest(t)
	c := addContact(t, s, "acc", "Crash")
	update(t, s, func(tx *Tx) error {
		_, err := tx.InsertMessage(&Message{ID: "m", ContactID: c, Body: "survives"})
		return err
	})
	crash := filepath.Join(t.TempDir(), "samizdat.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crash+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := dirState(t, filepath.Dir(crash))
	if _, err := Open(crash, testKey(9)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open(wrong key) = %v", err)
	}
	sameState(t, before, dirState(t, filepath.Dir(crash)))

	s2 := openTest(t, crash)
	view(t, s2, func(tx *Tx) error {
		m, err := tx.Message(c, false, "m")
		if err != nil || m.Body != "survives" {
			t.Errorf("after recovery: %+v, %v", m, err)
		}
		return nil
	})
}

func TestPragmas(t *testing.T) {
	s, _ := newTest(t)
	check := func(db interface {
		QueryRow(string, ...any) *sql.Row
	}, pragma, want string) {
		t.Helper()
		var got string
		if err := db.QueryRow(`PRAGMA ` + pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
		}
	}
	check(s.w, "journal_mode", "wal")
	check(s.w, "synchronous", "1") // NORMAL
	check(s.w, "foreign_keys", "1")
	check(s.w, "temp_store", "2") // MEMORY
	check(s.r, "query_only", "1")
	check(s.r, "foreign_keys", "1")
}

func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my profile #1 ?x=%20 Привет")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "samizdat.db")
	s := openTest(t, path)
	addContact(t, s, "acc", "Odd")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "samizdat.db" {
		t.Fatalf("files in profile dir: %v", entries)
	}
	s = openTest(t, path)
	view(t, s, func(tx *Tx) error { _, err := tx.ContactByName("odd"); return err })
}
