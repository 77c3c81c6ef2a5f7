package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestOrderPerSender: a received message written before messages of the
// same sender already stored is shown before them, without moving any
// other message; our own messages and paging by seq are unaffected.
func TestOrderPerSender(t *testing.T) {
	s, _ := newTest(t)
	cid := addContact(t, s, "acct-bob", "bob")
	t0 := time.UnixMilli(1_000_000)
	put := func(id string, outgoing bool, sent int) {
		update(t, s, func(tx *Tx) error {
			_, err := tx.InsertMessage(&Message{ID: id, ContactID: cid, Outgoing: outgoing, Body: id, SentAt: t0.Add(time.Duration(sent) * time.Millisecond)})
			return err
		})
	}
	shown := func() []string {
		var out []string
		view(t, s, func(tx *Tx) error {
			ms, err := tx.Messages(cid, 0, 0)
			for _, m := range ms {
				out = append(out, m.ID)
			}
			return err
		})
		return out
	}
	put("b1", false, 1)
	put("me1", true, 500) // our clock is ahead: it must not matter
	put("b4", false, 4)
	put("b2", false, 2) // late: before b4, after me1 (arrival order with others)
	put("b3", false, 3) // late too: between b2 and b4
	put("me2", true, 0)
	want := []string{"b1", "me1", "b2", "b3", "b4", "me2"}
	if got := shown(); !slices.Equal(got, want) {
		t.Fatalf("shown %q, want %q", got, want)
	}
	// Paging by seq: after b4's seq come b2, b3 and me2, in display order.
	view(t, s, func(tx *Tx) error {
		b4, err := tx.Message(cid, false, "b4")
		if err != nil {
			return err
		}
		ms, err := tx.Messages(cid, b4.Seq, 2) // the first two by seq: b2, b3
		if err != nil {
			return err
		}
		if len(ms) != 2 || ms[0].ID != "b2" || ms[1].ID != "b3" || !(ms[0].Ord < ms[1].Ord && ms[1].Ord < b4.Ord) || b4.Ord != float64(b4.Seq) {
			return fmt.Errorf("page after b4: %+v (b4 %+v)", ms, b4)
		}
		page, _, err := tx.MessagesBefore(cid, 0, 100)
		if err != nil {
			return err
		}
		var ids []string
		for _, m := range page {
			ids = append(ids, m.ID)
		}
		if !slices.Equal(ids, want) {
			return fmt.Errorf("newest page %q, want %q", ids, want)
		}
		return nil
	})
	// Many late messages into one gap: each goes before b4, in order,
	// also once no key is left between two (then it stays where it
	// arrived, after b4: the only case left in arrival order).
	for i := range 70 {
		put(fmt.Sprintf("late%02d", i), false, 3) // same timestamp as b3: after it
	}
	got := shown()
	i4 := slices.Index(got, "b4")
	if i4 < 40 {
		t.Fatalf("only %d messages placed before b4: %q", i4, got)
	}
	for i := 1; i < i4; i++ {
		if got[i-1] > got[i] && got[i-1] != "me1" && got[i] != "me1" {
			t.Fatalf("out of order before b4: %q", got[:i4+1])
		}
	}
}

// TestOrderGroupResolved: a group post stored pending (sender key
// missing) and read later is placed by its timestamp among its sender's
// posts; another member's posts keep their arrival order.
func TestOrderGroupResolved(t *testing.T) {
	s, _ := newTest(t)
	gid := []byte("group-order-0001")
	update(t, s, func(tx *Tx) error {
		return tx.AddGroup(&Group{ID: gid, Secret: []byte{1}, Name: "G", Created: time.Now()})
	})
	t0 := time.UnixMilli(2_000_000)
	put := func(id, sender string, sent int, pending bool) {
		update(t, s, func(tx *Tx) error {
			m := &GroupMessage{GroupID: gid, ID: id, Sender: sender, Body: id, SentAt: t0.Add(time.Duration(sent) * time.Millisecond), At: time.Now(), Pending: pending, Raw: []byte(id)}
			if pending {
				m.Body, m.SentAt = "", time.Time{}
			}
			_, err := tx.PutGroupMessage(m)
			return err
		})
	}
	put("a1", "alice", 1, true) // waits for alice's key
	put("c9", "carol", 9, false)
	put("a3", "alice", 3, false) // gossip, after the history
	put("a2", "alice", 2, false) // history fetch: before a3
	update(t, s, func(tx *Tx) error { return tx.ResolveGroupMessage(gid, "a1", "alice", "a1", t0.Add(time.Millisecond)) })
	var got []string
	view(t, s, func(tx *Tx) error {
		ms, err := tx.GroupMessages(gid, 0, 0)
		for _, m := range ms {
			got = append(got, m.ID)
		}
		return err
	})
	if want := []string{"a1", "c9", "a2", "a3"}; !slices.Equal(got, want) {
		t.Fatalf("shown %q, want %q", got, want)
	}
}
