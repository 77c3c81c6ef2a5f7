package store

import (
	"errors"
	"testing"
	"time"
)

// TestImportMessage: a history import keeps the display keys it is given
// (before the messages already here), stores a message once however often
// it is imported, and refuses a bad state or body; NewestMessages gives
// the last ones in display order (not in arrival order).
func TestImportMessage(t *testing.T) {
	s, _ := newTest(t)
	cid := addContact(t, s, "acct-bob", "bob")
	now := time.Now()
	update(t, s, func(tx *Tx) error {
		_, err := tx.InsertMessage(&Message{ID: "new1", ContactID: cid, Body: "arrived after linking", SentAt: now, At: now, State: StateReceived})
		return err
	})
	hist := []*Message{
		{ID: "old1", ContactID: cid, Outgoing: true, Body: "first", SentAt: now.Add(-3 * time.Hour), At: now.Add(-3 * time.Hour), State: StateDelivered},
		{ID: "old2", ContactID: cid, Body: "second", SentAt: now.Add(-2 * time.Hour), At: now.Add(-2 * time.Hour), State: StateRead},
	}
	for round := range 2 {
		update(t, s, func(tx *Tx) error {
			for i, m := range hist {
				c := *m
				ok, err := tx.ImportMessage(&c, float64(i-len(hist)-1))
				if err != nil {
					return err
				}
				if ok != (round == 0) {
					t.Errorf("round %d: import of %s stored = %v", round, m.ID, ok)
				}
			}
			return nil
		})
	}
	var ms []Message
	view(t, s, func(tx *Tx) (err error) { ms, err = tx.Messages(cid, 0, 0); return err })
	if len(ms) != 3 || ms[0].ID != "old1" || ms[1].ID != "old2" || ms[2].ID != "new1" {
		t.Fatalf("display order: %+v", ms)
	}
	if !ms[0].Outgoing || ms[0].State != StateDelivered || ms[1].State != StateRead || !ms[0].SentAt.Equal(hist[0].SentAt) {
		t.Errorf("imported as %+v", ms[:2])
	}
	// The chat list shows the message shown last, not the last stored.
	var cs []ChatSummary
	view(t, s, func(tx *Tx) (err error) { cs, err = tx.Chats(); return err })
	if len(cs) != 1 || cs[0].Last == nil || cs[0].Last.ID != "new1" {
		t.Errorf("the chat's last message after the import: %+v", cs)
	}
	view(t, s, func(tx *Tx) (err error) { ms, err = tx.NewestMessages(cid, 2); return err })
	if len(ms) != 2 || ms[0].ID != "old2" || ms[1].ID != "new1" {
		t.Errorf("NewestMessages(2) = %+v", ms)
	}
	update(t, s, func(tx *Tx) error {
		for _, bad := range []*Message{
			{ID: "x1", ContactID: cid, Body: "a received message cannot be delivered", State: StateDelivered},
			{ID: "x2", ContactID: cid, Body: "\xff", State: StateReceived},
			{ID: "", ContactID: cid, Body: "no id", State: StateReceived},
		} {
			if _, err := tx.ImportMessage(bad, -1); !errors.Is(err, ErrInvalid) {
				t.Errorf("import of %q: %v, want ErrInvalid", bad.Body, err)
			}
		}
		if _, err := tx.ImportMessage(&Message{ID: "x3", ContactID: cid + 100, Body: "no such contact", State: StateReceived}, -1); !errors.Is(err, ErrNotFound) {
			t.Errorf("import for an unknown contact: %v", err)
		}
		return nil
	})
}
