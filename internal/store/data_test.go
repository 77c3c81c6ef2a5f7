package store

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"
)

func TestContacts(t *testing.T) {
	s, _ := newTest(t)
	id := addContact(t, s, "acc-a", "Alice")
	addContact(t, s, "acc-m", "Маша")
	addContact(t, s, "acc-b", "bob")

	for _, c := range []Contact{
		{AccountID: "acc-a", Name: "Someone"}, // same account
		{AccountID: "acc-z", Name: "ALICE"},   // same name, other case
		{AccountID: "acc-z", Name: "МАША"},    // Cyrillic case folding
		{AccountID: "acc-z", Name: " alice "}, // surrounding space
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
		got, err := s.Search(ctx, tc.query, 0)
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
	// Not indexed yet: the transaction-level search does not see it...
	view(t, s, func(tx *Tx) error {
		got, err := tx.Search("again", 0)
		if err != nil || len(got) != 0 {
			t.Errorf("unindexed message found: %+v, %v", got, err)
		}
		return nil
	})
	// ... Store.Search indexes it first.
	got, err := s.Search(ctx, "station", 1)
	if err != nil || len(got) != 1 || got[0].ID != "late" {
		t.Errorf("Search newest first = %+v, %v", got, err)
	}
	// Deleting and editing indexed and unindexed rows keeps the index sound.
	update(t, s, func(tx *Tx) error {
		if _, err := tx.InsertMessage(&Message{ID: "fresh", ContactID: a, Body: "unindexed bridge words"}); err != nil {
			return err
		}
		if _, err := tx.exec(`DELETE FROM messages WHERE msg_id IN ('3', 'fresh')`); err != nil {
			return err
		}
		_, err := tx.exec(`UPDATE messages SET body = 'the tunnel' WHERE msg_id = '5'`)
		return err
	})
	for q, want := range map[string]int{"bridge": 0, "key": 0, "tunnel": 1, "station": 2} {
		got, err := s.Search(ctx, q, 0)
		if err != nil || len(got) != want {
			t.Errorf("after delete/update, Search(%q) = %d results, %v; want %d", q, len(got), err, want)
		}
	}
	update(t, s, func(tx *Tx) error {
		_, err := tx.exec(`INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')`)
		return err
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
