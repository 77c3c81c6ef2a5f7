package messenger

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// TestOrderLateArrival: a message that reaches the recipient after
// messages its sender wrote later (the earlier one was answered "retry",
// or came by another path) is shown in the order they were written. The
// envelopes are handed to bob's receive path in the order C, A, B.
func TestOrderLateArrival(t *testing.T) {
	ctx := context.Background()
	a, b := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, a, b)
	addContact(t, b, a)
	first := send(t, a, "bob", "hello")
	waitState(t, a, "bob", first.ID, StateDelivered)
	bobPeer := b.n.PeerID()
	alicePeer := a.n.PeerID()
	b.stop() // alice's next messages stay in her outbox
	var ids []string
	for _, text := range []string{"A", "B", "C"} {
		ids = append(ids, send(t, a, "bob", text).ID)
	}
	var items []store.OutboxItem
	if err := a.st.View(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByPeer(bobPeer)
		if err != nil {
			return err
		}
		items, err = tx.Outbox(c.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("alice's outbox holds %d items, want 3", len(items))
	}
	a.stop() // nothing else reaches bob
	b.start()
	for _, i := range []int{2, 0, 1} {
		env, err := wire.ParseEnvelope(items[i].Payload)
		if err != nil {
			t.Fatal(err)
		}
		r, err := b.m.receive(ctx, alicePeer, env)
		if err != nil || r.Ack == nil {
			t.Fatalf("receive %d: %v (response %v)", i, err, r)
		}
	}
	var got []string
	for _, m := range messages(t, b, "alice") {
		got = append(got, m.Body)
	}
	if want := []string{"hello", "A", "B", "C"}; !slices.Equal(got, want) {
		t.Fatalf("bob shows %q, want %q (alice's order)", got, want)
	}
	// Paging by seq still returns each message once: the late ones after
	// C, by seq, each with its display key.
	ms := messages(t, b, "alice")
	c := ms[3] // C, which arrived first
	_, page, err := b.m.Messages(ctx, "alice", c.Seq, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Body != "A" || page[1].Body != "B" || !(page[1].Ord < c.Ord) || page[0].Seq <= c.Seq {
		t.Fatalf("after C (seq %d, ord %v): %+v", c.Seq, c.Ord, page)
	}
}

// TestOrderGroupHistory: posts recovered by a history fetch are shown
// before the newer posts of the same member that arrived over gossip.
func TestOrderGroupHistory(t *testing.T) {
	ctx := context.Background()
	a, b := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, a, b)
	g, err := a.m.CreateGroup(ctx, "Order")
	if err != nil {
		t.Fatal(err)
	}
	if _, err = a.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob joins", func() bool {
		gi, err := b.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2
	})
	if _, err := a.m.GroupSend(ctx, g.ID, "hello"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob reads alice", func() bool { return groupHas(t, b, g.ID, "hello") })
	b.stop()
	for _, text := range []string{"P1", "P2", "P3"} {
		if _, err := a.m.GroupSend(ctx, g.ID, text); err != nil {
			t.Fatal(err)
		}
	}
	gid, _ := hex.DecodeString(g.ID)
	var raws [][]byte
	var topic string
	if err := a.st.View(ctx, func(tx *store.Tx) error {
		grp, err := tx.Group(gid)
		if err != nil {
			return err
		}
		topic = groupTopic(grp.Secret)
		ms, err := tx.GroupMessages(gid, 0, 0)
		// Alice's posts, not the card announcements a group add
		// publishes on the topic too.
		for _, m := range ms {
			if strings.HasPrefix(m.Body, "P") {
				raws = append(raws, m.Raw)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(raws) != 3 {
		t.Fatalf("alice holds %d new posts, want 3", len(raws))
	}
	a.stop()
	b.start()
	b.m.receiveGroupMessages(ctx, gid, topic, "", raws[2:], false) // P3 over gossip
	b.m.receiveGroupMessages(ctx, gid, topic, "", raws[:2], true)  // P1, P2 from history
	if got, want := groupTexts(t, b, g.ID), []string{"hello", "P1", "P2", "P3"}; !slices.Equal(got, want) {
		t.Fatalf("bob shows %q, want %q (alice's order)", got, want)
	}
}
