package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestChannelsAndPosts(t *testing.T) {
	s, _ := newTest(t)
	id := bytes.Repeat([]byte{1}, 32)
	c := &Channel{ID: id, Name: "Alerts", OwnerPub: bytes.Repeat([]byte{2}, 32), Seeds: []string{"/ip4/127.0.0.1/tcp/1/p2p/x"}, Created: time.Now()}
	update(t, s, func(tx *Tx) error { return tx.AddChannel(c) })
	if err := s.Update(ctx, func(tx *Tx) error { return tx.AddChannel(c) }); !errors.Is(err, ErrExists) {
		t.Fatalf("second AddChannel: %v", err)
	}
	update(t, s, func(tx *Tx) error {
		for _, seq := range []uint64{0, 1, 3} {
			ok, err := tx.PutChannelPost(&ChannelPost{ChannelID: id, Seq: seq, Hash: []byte{byte(seq)}, Post: []byte{9, byte(seq)}, At: time.Now()})
			if err != nil || !ok {
				return err
			}
		}
		if ok, err := tx.PutChannelPost(&ChannelPost{ChannelID: id, Seq: 1, Hash: []byte{7}, Post: []byte{7}}); ok || err != nil {
			t.Errorf("second post at seq 1: %v %v", ok, err)
		}
		if _, err := tx.PutChannelPost(&ChannelPost{ChannelID: []byte{5}, Seq: 0, Hash: []byte{0}, Post: []byte{0}}); !errors.Is(err, ErrNotFound) {
			t.Errorf("post of an unknown channel: %v", err)
		}
		return nil
	})
	view(t, s, func(tx *Tx) error {
		got, err := tx.Channel(id)
		if err != nil || got.Name != "Alerts" || got.OwnerKey != nil || len(got.Seeds) != 1 {
			t.Errorf("Channel = %+v, %v", got, err)
		}
		seqs, _ := tx.ChannelSeqs(id)
		last, _ := tx.LastChannelPost(id)
		ps, _ := tx.ChannelPosts(id, 1, 1)
		if len(seqs) != 3 || last.Seq != 3 || len(ps) != 1 || ps[0].Seq != 1 || ps[0].Post[1] != 1 {
			t.Errorf("seqs %v, last %+v, posts %+v", seqs, last, ps)
		}
		if _, err := tx.ChannelPost(id, 2); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing post: %v", err)
		}
		return nil
	})
}

func TestGroupsStore(t *testing.T) {
	s, _ := newTest(t)
	gid := bytes.Repeat([]byte{3}, 32)
	placeholder := bytes.Repeat([]byte{4}, 32)
	update(t, s, func(tx *Tx) error {
		if err := tx.AddGroup(&Group{ID: gid, Secret: []byte{1}, Name: "Family", Created: time.Now()}); err != nil {
			return err
		}
		if err := tx.AddGroup(&Group{ID: placeholder, Secret: []byte{}, Gone: true, Created: time.Now()}); err != nil {
			return err
		}
		if ok, err := tx.PutGroupOp(gid, []byte{1}, []byte("op")); !ok || err != nil {
			t.Errorf("PutGroupOp: %v %v", ok, err)
		}
		if ok, _ := tx.PutGroupOp(gid, []byte{1}, []byte("op")); ok {
			t.Error("the same op stored twice")
		}
		if err := tx.PutGroupKey(gid, "acct", 0, []byte("k0")); err != nil {
			return err
		}
		if err := tx.PutGroupKey(gid, "acct", 0, []byte("k0'")); err != nil {
			return err
		}
		for i, pending := range []bool{false, true} {
			m := &GroupMessage{GroupID: gid, ID: string(rune('a' + i)), Sender: "acct", Body: "x", At: time.Now(), Pending: pending, Raw: []byte{1}}
			if ok, err := tx.PutGroupMessage(m); !ok || err != nil {
				t.Errorf("PutGroupMessage: %v %v", ok, err)
			}
		}
		return nil
	})
	view(t, s, func(tx *Tx) error {
		gs, _ := tx.Groups()
		if len(gs) != 1 || gs[0].Name != "Family" {
			t.Errorf("Groups (placeholders hidden) = %+v", gs)
		}
		k, err := tx.GroupKey(gid, "acct", 0)
		if err != nil || string(k) != "k0'" {
			t.Errorf("GroupKey = %q %v", k, err)
		}
		if _, err := tx.GroupKey(gid, "acct", 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing key: %v", err)
		}
		ms, _ := tx.GroupMessages(gid, 0, 0)
		pend, _ := tx.PendingGroupMessages(gid)
		recent, _ := tx.RecentGroupMessages(gid, time.Time{}, 10)
		if len(ms) != 1 || len(pend) != 1 || len(recent) != 2 {
			t.Errorf("messages %d, pending %d, recent %d", len(ms), len(pend), len(recent))
		}
		return nil
	})
	update(t, s, func(tx *Tx) error {
		if err := tx.ResolveGroupMessage(gid, "b", "acct", "read now", time.Now()); err != nil {
			return err
		}
		return tx.SetGroupSecret(&Group{ID: placeholder, Secret: []byte{2}, Name: "Late"})
	})
	view(t, s, func(tx *Tx) error {
		ms, _ := tx.GroupMessages(gid, 0, 0)
		gs, _ := tx.Groups()
		if len(ms) != 2 || ms[1].Body != "read now" || len(gs) != 2 {
			t.Errorf("after resolving: %d messages, %d groups", len(ms), len(gs))
		}
		return nil
	})
}

// TestGroupKeysPerDevice: a member's keys are kept per device
// ("account/device") beside the key of a node from before (the account
// alone); deleting a device's keys leaves the others, deleting the
// member's removes all of them, and a placeholder counts a member's
// device keys as the member's.
func TestGroupKeysPerDevice(t *testing.T) {
	s, _ := newTest(t)
	gid := bytes.Repeat([]byte{5}, 32)
	placeholder := bytes.Repeat([]byte{6}, 32)
	update(t, s, func(tx *Tx) error {
		if err := tx.AddGroup(&Group{ID: gid, Secret: []byte{1}, Name: "g", Created: time.Now()}); err != nil {
			return err
		}
		if err := tx.AddGroup(&Group{ID: placeholder, Secret: []byte{}, Gone: true, Created: time.Now()}); err != nil {
			return err
		}
		for _, k := range []string{"acct", "acct/phone", "acct/laptop", "acctx/phone"} {
			if err := tx.PutGroupKey(gid, k, 0, []byte(k)); err != nil {
				return err
			}
		}
		return tx.PutGroupKey(placeholder, "acct/phone", 0, []byte("p"))
	})
	count := func(tx *Tx) map[string]bool {
		ks, err := tx.GroupKeys(gid)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, k := range ks {
			out[k.Member] = true
		}
		return out
	}
	update(t, s, func(tx *Tx) error {
		if n, err := tx.PlaceholdersKeyedBy("acct"); n != 1 || err != nil {
			t.Errorf("PlaceholdersKeyedBy(acct) = %d, %v; want 1", n, err)
		}
		if n, _ := tx.PlaceholdersKeyedBy("acc"); n != 0 {
			t.Errorf("PlaceholdersKeyedBy(acc) = %d, want 0 (not a prefix match)", n)
		}
		if err := tx.DeleteGroupKeys(gid, "acct/phone"); err != nil {
			return err
		}
		if got := count(tx); len(got) != 3 || got["acct/phone"] {
			t.Errorf("after deleting one device's keys: %v", got)
		}
		if err := tx.DeleteGroupKeys(gid, "acct"); err != nil {
			return err
		}
		if got := count(tx); len(got) != 1 || !got["acctx/phone"] {
			t.Errorf("after deleting the member's keys: %v", got)
		}
		return nil
	})
}
