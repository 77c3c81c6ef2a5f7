package store

import (
	"fmt"
	"testing"
)

func TestChatsPagingAndRead(t *testing.T) {
	s, _ := newTest(t)
	a := addContact(t, s, "acct-a", "Alice")
	b := addContact(t, s, "acct-b", "Bob")
	update(t, s, func(tx *Tx) error {
		for i := range 25 {
			m := &Message{ID: fmt.Sprintf("in-%d", i), ContactID: a, Body: fmt.Sprintf("hello %d", i)}
			if i%5 == 0 {
				m.ID, m.Outgoing = fmt.Sprintf("out-%d", i), true
			}
			if _, err := tx.InsertMessage(m); err != nil {
				return err
			}
		}
		return nil
	})
	var chats []ChatSummary
	view(t, s, func(tx *Tx) (err error) { chats, err = tx.Chats(); return err })
	if len(chats) != 2 || chats[0].ContactID != a || chats[1].ContactID != b {
		t.Fatalf("chats = %+v", chats)
	}
	if chats[0].Unread != 20 || chats[0].Last == nil || chats[0].Last.Body != "hello 24" {
		t.Fatalf("chat a = unread %d, last %+v", chats[0].Unread, chats[0].Last)
	}
	if chats[1].Unread != 0 || chats[1].Last != nil {
		t.Fatalf("chat b = %+v", chats[1])
	}

	var page []Message
	var more bool
	view(t, s, func(tx *Tx) (err error) { page, more, err = tx.MessagesBefore(a, 0, 10); return err })
	if len(page) != 10 || !more || page[0].Body != "hello 15" || page[9].Body != "hello 24" {
		t.Fatalf("newest page: more %v, %d messages from %q", more, len(page), page[0].Body)
	}
	view(t, s, func(tx *Tx) (err error) { page, more, err = tx.MessagesBefore(a, page[0].Seq, 10); return err })
	if len(page) != 10 || !more || page[0].Body != "hello 5" {
		t.Fatalf("second page: more %v, first %q", more, page[0].Body)
	}
	view(t, s, func(tx *Tx) (err error) { page, more, err = tx.MessagesBefore(a, page[0].Seq, 10); return err })
	if len(page) != 5 || more || page[0].Body != "hello 0" {
		t.Fatalf("last page: more %v, %d messages", more, len(page))
	}

	var n int
	update(t, s, func(tx *Tx) (err error) { n, err = tx.MarkRead(a, page[4].Seq); return err })
	if n != 4 { // hello 1..4 (0 is outgoing)
		t.Fatalf("MarkRead changed %d, want 4", n)
	}
	var ids []string
	update(t, s, func(tx *Tx) (err error) { ids, err = tx.MarkReadIDs(a, 0); return err })
	if len(ids) != 16 || ids[0] == "" || ids[0] == ids[15] {
		t.Fatalf("MarkReadIDs(all) = %v, want 16 ids", ids)
	}
	update(t, s, func(tx *Tx) (err error) { ids, err = tx.MarkReadIDs(a, 0); return err })
	if len(ids) != 0 {
		t.Fatalf("MarkReadIDs again = %v", ids)
	}
	view(t, s, func(tx *Tx) (err error) { chats, err = tx.Chats(); return err })
	if chats[0].Unread != 0 {
		t.Fatalf("unread after MarkRead = %d", chats[0].Unread)
	}
	var out []Message
	view(t, s, func(tx *Tx) (err error) { out, err = tx.Messages(a, 0, 0); return err })
	for _, m := range out {
		if m.Outgoing && m.State != StateQueued {
			t.Fatalf("MarkRead touched outgoing message %s: %s", m.ID, m.State)
		}
	}
}
