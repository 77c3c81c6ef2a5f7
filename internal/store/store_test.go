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
	"sort"
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

func TestContacts(t *testing.T) {
	s, _ := newTest(t)
	id := addContact(t, s, "acc-a", "Alice")
	addContact(t, s, "acc-m", "Маша")
	addContact(t, s, "acc-b", "bob")

	for _, c := range []Contact{
		{AccountID: "acc-a", Name: "Someone"}, // same account
		{AccountID: "acc-z", Name: "ALICE"},   // same name, other case
		{AccountID: "acc-z", Name: "МАША"},    // Cyrillic case folding
	} {
		err := s.Update(ctx, func(tx *Tx) error { return tx.AddContact(&c) })
		if !errors.Is(err, ErrExists) {
			t.Errorf("AddContact(%+v) = %v, want ErrExists", c, err)
		}
	}
	for _, c := range []Contact{{AccountID: "", Name: "x"}, {AccountID: "y", Name: " "}} {
		if err := s.Update(ctx, func(tx *Tx) error { return tx.AddContact(&c) }); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddContact(%+v) = %v, want ErrInvalid", c, err)
		}
	}

	view(t, s, func(tx *Tx) error {
		for _, name := range []string{"alice", "ALICE", "маша"} {
			if c, err := tx.ContactByName(name); err != nil {
				t.Errorf("ContactByName(%q): %v", name, err)
			} else if name == "alice" && c.ID != id {
				t.Errorf("ContactByName(alice).ID = %d", c.ID)
			}
		}
		if c, err := tx.ContactByAccount("acc-b"); err != nil || c.Name != "bob" {
			t.Errorf("ContactByAccount = %+v, %v", c, err)
		}
		for _, err := range []error{
			func() error { _, err := tx.Contact(999); return err }(),
			func() error { _, err := tx.ContactByName("carol"); return err }(),
			func() error { _, err := tx.ContactByAccount("nope"); return err }(),
			func() error { _, err := tx.ContactByPeer("nope"); return err }(),
			func() error { _, err := tx.ContactByPeer(""); return err }(),
			func() error { _, err := tx.Session(id); return err }(),
			func() error { _, err := tx.Blob("nope"); return err }(),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("lookup of absent = %v, want ErrNotFound", err)
			}
		}
		all, err := tx.Contacts()
		if err != nil {
			return err
		}
		var names []string
		for _, c := range all {
			names = append(names, c.Name)
		}
		if fmt.Sprint(names) != "[Alice bob Маша]" {
			t.Errorf("Contacts order = %v", names)
		}
		return nil
	})

	// UpdateContact: rename, set peer; collisions and absent ids.
	update(t, s, func(tx *Tx) error {
		c, err := tx.Contact(id)
		if err != nil {
			return err
		}
		c.Name, c.PeerID, c.Verified, c.Addrs = "Alicia", "peer-a", true, []string{"/ip4/1.2.3.4/tcp/5"}
		if err := tx.UpdateContact(c); err != nil {
			return err
		}
		c.Name = "BOB"
		if err := tx.UpdateContact(c); !errors.Is(err, ErrExists) {
			t.Errorf("rename onto bob = %v", err)
		}
		c.ID = 999
		c.Name = "Zed"
		if err := tx.UpdateContact(c); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateContact(absent) = %v", err)
		}
		got, err := tx.ContactByPeer("peer-a")
		if err != nil || got.Name != "Alicia" || !got.Verified || len(got.Addrs) != 1 {
			t.Errorf("ContactByPeer = %+v, %v", got, err)
		}
		if err := tx.PutSession(999, []byte("x")); !errors.Is(err, ErrNotFound) {
			t.Errorf("PutSession(absent contact) = %v", err)
		}
		return nil
	})
}

func TestMessages(t *testing.T) {
	s, _ := newTest(t)
	a := addContact(t, s, "a", "A")
	b := addContact(t, s, "b", "B")
	update(t, s, func(tx *Tx) error {
		for i := range 5 {
			for _, c := range []int64{a, b} {
				m := &Message{ID: fmt.Sprintf("%x", i), ContactID: c, Outgoing: i%2 == 0, Body: fmt.Sprint("body ", i)}
				ok, err := tx.InsertMessage(m)
				if err != nil || !ok || m.Seq == 0 || m.At.IsZero() {
					t.Fatalf("InsertMessage = %v, %v, %+v", ok, err, m)
				}
			}
		}
		// Dedupe: same (contact, direction, id) is ignored, the original kept.
		dup := &Message{ID: "0", ContactID: a, Outgoing: true, Body: "changed"}
		if ok, err := tx.InsertMessage(dup); ok || err != nil || dup.Seq != 0 {
			t.Errorf("duplicate InsertMessage = %v, %v, seq %d", ok, err, dup.Seq)
		}
		// Same id in the other direction is a different message.
		if ok, err := tx.InsertMessage(&Message{ID: "0", ContactID: a, Outgoing: false, Body: "x"}); !ok || err != nil {
			t.Errorf("same id other direction = %v, %v", ok, err)
		}
		if m, err := tx.Message(a, true, "0"); err != nil || m.Body != "body 0" {
			t.Errorf("original after dup = %+v, %v", m, err)
		}
		for _, m := range []Message{
			{ID: "", ContactID: a, Body: "x"},
			{ID: "bad", ContactID: a, Body: "\xff\xfe"},
			{ID: "big", ContactID: a, Body: string(bytes.Repeat([]byte("a"), MaxBodySize+1))},
			{ID: "st", ContactID: a, Body: "x", State: StateDelivered}, // not an incoming state
		} {
			if _, err := tx.InsertMessage(&m); !errors.Is(err, ErrInvalid) {
				t.Errorf("InsertMessage(%.20q) = %v, want ErrInvalid", m.ID, err)
			}
		}
		if _, err := tx.InsertMessage(&Message{ID: "x", ContactID: 999, Body: "x"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("InsertMessage(absent contact) = %v", err)
		}
		return nil
	})

	view(t, s, func(tx *Tx) error {
		all, err := tx.Messages(a, 0, 0)
		if err != nil {
			return err
		}
		if len(all) != 6 {
			t.Fatalf("Messages(a) = %d, want 6", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].Seq <= all[i-1].Seq || all[i].ContactID != a {
				t.Fatalf("Messages not ascending / wrong contact: %+v", all)
			}
		}
		page, err := tx.Messages(a, all[1].Seq, 2)
		if err != nil || len(page) != 2 || page[0].Seq != all[2].Seq {
			t.Errorf("page = %+v, %v", page, err)
		}
		return nil
	})

	update(t, s, func(tx *Tx) error {
		for _, st := range []string{StateSent, StateDelivered} {
			if err := tx.SetMessageState(a, true, "0", st); err != nil {
				return err
			}
		}
		if err := tx.SetMessageState(b, true, "2", StateFailed); err != nil {
			return err
		}
		if err := tx.SetMessageState(a, true, "nope", StateSent); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetMessageState(absent) = %v", err)
		}
		if err := tx.SetMessageState(a, false, "1", StateSent); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetMessageState(incoming, sent) = %v", err)
		}
		return tx.SetMessageState(a, false, "1", StateRead)
	})
	view(t, s, func(tx *Tx) error {
		counts, err := tx.OutgoingStateCounts()
		if err != nil {
			return err
		}
		// Outgoing: ids 0,2,4 for each of a and b.
		want := map[string]int{StateQueued: 4, StateDelivered: 1, StateFailed: 1}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("OutgoingStateCounts = %v, want %v", counts, want)
		}
		return nil
	})
}

func TestSearch(t *testing.T) {
	s, _ := newTest(t)
	a := addContact(t, s, "a", "A")
	bodies := []string{
		`Meet me at the "old" station at 5*`,
		`Привет, как дела? Встретимся на Невском`,
		`سلام دوست من، فردا می‌بینمت`,
		`NEAR the river AND under the bridge`,
		`Café crème brûlée recipe`,
		`don't forget the key`,
	}
	update(t, s, func(tx *Tx) error {
		for i, body := range bodies {
			if _, err := tx.InsertMessage(&Message{ID: fmt.Sprint(i), ContactID: a, Body: body}); err != nil {
				return err
			}
		}
		return nil
	})
	ids := func(ms []Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		sort.Strings(out)
		return out
	}
	for _, tc := range []struct {
		query string
		want  string
	}{
		{`station`, `[0]`},
		{`STATION old`, `[0]`},
		{`"old"`, `[0]`},
		{`"old`, `[0]`},
		{`old"station`, `[0]`}, // one phrase of two adjacent tokens
		{`5*`, `[0]`},
		{`*`, `[]`},
		{`"`, `[]`},
		{`NEAR`, `[3]`},
		{`NEAR(river bridge)`, `[]`},
		{`river AND bridge`, `[3]`}, // AND is a word to find (and it is there), not an operator
		{`river AND nothing`, `[]`},
		{`river OR nothing`, `[]`},
		{`body:river`, `[]`},
		{`-river`, `[3]`},
		{`^river`, `[3]`},
		{`(`, `[]`},
		{`привет`, `[1]`},
		{`ПРИВЕТ Невском`, `[1]`},
		{`Встре`, `[1]`}, // last word is a prefix
		{`سلام`, `[2]`},
		{`دوست`, `[2]`},
		{`cafe creme`, `[4]`},
		{`brulee`, `[4]`},
		{`don't`, `[5]`},
		{``, `[]`},
		{`   `, `[]`},
		{`🙂`, `[]`},
		{`x' OR 1=1 --`, `[]`},
	} {
		var got []Message
		err := s.View(ctx, func(tx *Tx) (err error) {
			got, err = tx.Search(tc.query, 0)
			return err
		})
		if err != nil {
			t.Errorf("Search(%q): %v", tc.query, err)
			continue
		}
		if g := fmt.Sprint(ids(got)); g != tc.want {
			t.Errorf("Search(%q) = %s, want %s", tc.query, g, tc.want)
		}
	}
	// Newest first, limit respected.
	update(t, s, func(tx *Tx) error {
		_, err := tx.InsertMessage(&Message{ID: "late", ContactID: a, Body: "the station again"})
		return err
	})
	view(t, s, func(tx *Tx) error {
		got, err := tx.Search("station", 1)
		if err != nil || len(got) != 1 || got[0].ID != "late" {
			t.Errorf("Search newest first = %+v, %v", got, err)
		}
		return nil
	})
}

func TestOutbox(t *testing.T) {
	s, _ := newTest(t)
	a := addContact(t, s, "a", "A")
	b := addContact(t, s, "b", "B")
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	update(t, s, func(tx *Tx) error {
		for _, it := range []OutboxItem{
			{MessageID: "m1", ContactID: a, Payload: []byte("p1"), NextAttempt: now.Add(time.Minute)},
			{MessageID: "m2", ContactID: b, Payload: []byte("p2"), NextAttempt: now},
			{MessageID: "m3", ContactID: a, Payload: []byte("p3"), NextAttempt: now.Add(-time.Hour)},
			{MessageID: "m4", ContactID: a, Payload: []byte("p4")}, // zero: due at once
		} {
			if err := tx.Enqueue(it); err != nil {
				return err
			}
		}
		if err := tx.Enqueue(OutboxItem{MessageID: "m1", ContactID: a}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate Enqueue = %v", err)
		}
		if err := tx.Enqueue(OutboxItem{MessageID: "m9", ContactID: 999}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Enqueue(absent contact) = %v", err)
		}
		return nil
	})
	due := func(at time.Time, limit int) string {
		var out []string
		view(t, s, func(tx *Tx) error {
			items, err := tx.DueOutbox(at, limit)
			for _, it := range items {
				out = append(out, it.MessageID)
			}
			return err
		})
		return fmt.Sprint(out)
	}
	if got := due(now, 0); got != "[m2 m3 m4]" {
		t.Errorf("DueOutbox(now) = %s", got)
	}
	if got := due(now, 2); got != "[m2 m3]" {
		t.Errorf("DueOutbox(now, 2) = %s", got)
	}
	if got := due(now.Add(time.Hour), 0); got != "[m1 m2 m3 m4]" {
		t.Errorf("DueOutbox(later) = %s", got)
	}

	update(t, s, func(tx *Tx) error {
		if err := tx.RescheduleOutbox("m3", a, 1, now.Add(30*time.Second), "dial failed"); err != nil {
			return err
		}
		if err := tx.RescheduleOutbox("m3", b, 1, now, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("Reschedule(wrong contact) = %v", err)
		}
		if err := tx.DeleteOutbox(b, "m2"); err != nil {
			return err
		}
		return tx.DeleteOutbox(b, "m2") // a repeated ack is harmless
	})
	if got := due(now, 0); got != "[m4]" {
		t.Errorf("DueOutbox after reschedule/delete = %s", got)
	}
	view(t, s, func(tx *Tx) error {
		items, err := tx.Outbox(a)
		if err != nil {
			return err
		}
		if len(items) != 3 || items[0].MessageID != "m1" || items[1].MessageID != "m3" || items[2].MessageID != "m4" {
			t.Fatalf("Outbox(a) = %+v", items)
		}
		m3 := items[1]
		if m3.Attempts != 1 || m3.LastError != "dial failed" || !m3.NextAttempt.Equal(now.Add(30*time.Second)) ||
			string(m3.Payload) != "p3" || m3.ContactID != a {
			t.Errorf("rescheduled item = %+v", m3)
		}
		if !items[2].NextAttempt.IsZero() {
			t.Errorf("zero NextAttempt came back as %v", items[2].NextAttempt)
		}
		return nil
	})
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

func TestFTSQuery(t *testing.T) {
	for in, want := range map[string]string{
		`hello`:          `"hello" *`,
		`a "b" c`:        `"a" """b""" "c" *`,
		`* NEAR ( )`:     `"NEAR" *`,
		`💬 !!`:           ``,
		`Привет мир`:     `"Привет" "мир" *`,
		"tab\tnewline\n": `"tab" "newline" *`,
	} {
		if got := ftsQuery(in); got != want {
			t.Errorf("ftsQuery(%q) = %q, want %q", in, got, want)
		}
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
