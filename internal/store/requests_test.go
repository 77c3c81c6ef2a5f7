package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRequestsApart: a pending request is no contact (Contacts, Chats and
// Search leave it out) until its Request time is cleared; its sizes count
// card, bodies and its blobs; deleting it takes its messages with it.
func TestRequestsApart(t *testing.T) {
	s, _ := newTest(t)
	friend := addContact(t, s, "acct-friend", "friend")
	now := time.Now()
	req := &Contact{AccountID: "acct-stranger", Name: "request acct-stranger", Card: []byte("card"), Request: now}
	update(t, s, func(tx *Tx) error {
		if err := tx.AddContact(req); err != nil {
			return err
		}
		for i, c := range []int64{friend, req.ID} {
			m := &Message{ID: strings.Repeat(string(rune('a'+i)), 32), ContactID: c, Body: "cheap watches", SentAt: now, At: now, State: StateReceived}
			if _, err := tx.InsertMessage(m); err != nil {
				return err
			}
		}
		return tx.PutBlob("att.x", []byte("12345"))
	})
	view(t, s, func(tx *Tx) error {
		cs, err := tx.Contacts()
		if err != nil || len(cs) != 1 || cs[0].ID != friend {
			t.Fatalf("contacts: %+v %v", cs, err)
		}
		chats, err := tx.Chats()
		if err != nil || len(chats) != 1 || chats[0].ContactID != friend {
			t.Fatalf("chats: %+v %v", chats, err)
		}
		rs, err := tx.Requests()
		if err != nil || len(rs) != 1 || rs[0].ID != req.ID || rs[0].Request.UnixNano() != now.UnixNano() {
			t.Fatalf("requests: %+v %v", rs, err)
		}
		sizes, err := tx.RequestSizes(func(int64) string { return "att." })
		if err != nil || len(sizes) != 1 || sizes[0].Messages != 1 || sizes[0].Bytes != int64(len("card")+len("cheap watches")+5) {
			t.Fatalf("sizes: %+v %v", sizes, err)
		}
		return nil
	})
	found, err := s.Search(ctx, "watches", 10)
	if err != nil || len(found) != 1 || found[0].ContactID != friend {
		t.Fatalf("search: %+v %v", found, err)
	}
	update(t, s, func(tx *Tx) error { return tx.DeleteContact(req.ID) })
	view(t, s, func(tx *Tx) error {
		if ms, err := tx.Messages(req.ID, 0, 0); err != nil || len(ms) != 0 {
			t.Fatalf("a deleted request's messages: %+v %v", ms, err)
		}
		return nil
	})
	if err := s.Update(ctx, func(tx *Tx) error { return tx.DeleteContact(req.ID) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

// TestBlockExpires: a blocked account is refused until its time, then not;
// blocks that ran out are forgotten when another is added.
func TestBlockExpires(t *testing.T) {
	s, _ := newTest(t)
	t0 := time.Unix(1_800_000_000, 0)
	update(t, s, func(tx *Tx) error { return tx.Block("acct-a", t0.Add(time.Hour), t0) })
	for _, c := range []struct {
		at   time.Time
		want bool
	}{{t0, true}, {t0.Add(59 * time.Minute), true}, {t0.Add(time.Hour), false}} {
		view(t, s, func(tx *Tx) error {
			if got, err := tx.Blocked("acct-a", c.at); err != nil || got != c.want {
				t.Fatalf("blocked at %v: %v %v, want %v", c.at.Sub(t0), got, err, c.want)
			}
			return nil
		})
	}
	update(t, s, func(tx *Tx) error { return tx.Block("acct-b", t0.Add(3*time.Hour), t0.Add(2*time.Hour)) })
	view(t, s, func(tx *Tx) error {
		var n int
		if err := tx.queryRow(`SELECT count(*) FROM blocked`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d blocks kept (%v), want the live one", n, err)
		}
		return nil
	})
}
