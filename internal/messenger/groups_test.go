package messenger

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

func groupTexts(t testing.TB, n *tnode, ref string) []string {
	t.Helper()
	_, ms, err := n.m.GroupMessages(context.Background(), ref, 0, 0)
	if err != nil {
		t.Fatalf("%s: group messages: %v", n.name, err)
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

func groupHas(t testing.TB, n *tnode, ref, text string) bool {
	return slices.Contains(groupTexts(t, n, ref), text)
}

// TestGroupSmall: create, add two contacts, everyone reads everyone,
// rename, leave.
func TestGroupSmall(t *testing.T) {
	ctx := context.Background()
	a, b, c := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	addContact(t, a, b)
	addContact(t, a, c)
	g, err := a.m.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Members) != 1 || !g.Admin {
		t.Fatalf("created %+v", g)
	}
	for _, who := range []string{"bob", "carol"} {
		if g, err = a.m.GroupAdd(ctx, g.ID, who); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.m.GroupAdd(ctx, g.ID, "bob"); err == nil {
		t.Fatal("added bob twice")
	}
	for _, n := range []*tnode{b, c} {
		eventually(t, 20*time.Second, n.name+" joins", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3 && !gi.Gone
		})
	}
	if _, err := b.m.GroupAdd(ctx, g.ID, "alice"); err == nil {
		t.Fatal("a non-admin changed the membership")
	}
	// Every sender's key reaches every member; a message sent before its
	// key arrived waits and is read then.
	for _, n := range []*tnode{a, b, c} {
		if _, err := n.m.GroupSend(ctx, g.ID, "hello from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*tnode{a, b, c} {
		for _, from := range []string{"alice", "bob", "carol"} {
			eventually(t, 20*time.Second, n.name+" reads "+from, func() bool { return groupHas(t, n, g.ID, "hello from "+from) })
		}
	}
	if _, err := a.m.GroupRename(ctx, g.ID, "Family 2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "rename reaches carol", func() bool {
		gi, err := c.m.Group(ctx, g.ID)
		return err == nil && gi.Name == "Family 2"
	})
	if _, err := c.m.GroupLeave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "alice sees carol leave", func() bool {
		gi, err := a.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2 && gi.Epoch == 1
	})
	if _, err := c.m.GroupSend(ctx, g.ID, "still here?"); err == nil {
		t.Fatal("sent to a group we left")
	}
}

// TestGroupRemoveAndCatchUp: a 20-member group; a removed member cannot
// read the next message; a member that was down during the removal and
// the message catches up when it comes back.
func TestGroupRemoveAndCatchUp(t *testing.T) {
	n := 20
	if raceBuild {
		n = 8
	}
	ctx := context.Background()
	nodes := make([]*tnode, n)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprintf("m%02d", i))
	}
	admin := nodes[0]
	for _, x := range nodes[1:] {
		addContact(t, admin, x)
	}
	g, err := admin.m.CreateGroup(ctx, "Street committee")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range nodes[1:] {
		if _, err := admin.m.GroupAdd(ctx, g.ID, x.name); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for _, x := range nodes {
		eventually(t, 60*time.Second, x.name+" sees 20 members", func() bool {
			gi, err := x.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == n
		})
	}
	t.Logf("%v: all %d joined", time.Since(start), n)
	if _, err := nodes[2].m.GroupSend(ctx, g.ID, "first meeting at 7"); err != nil {
		t.Fatal(err)
	}
	for _, x := range nodes {
		eventually(t, 60*time.Second, x.name+" reads the first message", func() bool { return groupHas(t, x, g.ID, "first meeting at 7") })
	}
	t.Logf("%v: all read", time.Since(start))

	removed, down := nodes[3], nodes[5]
	down.pinAddr()
	down.stop()
	if _, err := admin.m.GroupRemove(ctx, g.ID, removed.name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.m.GroupSend(ctx, g.ID, "the informer is out"); err != nil {
		t.Fatal(err)
	}
	for _, x := range nodes {
		if x == removed || x == down {
			continue
		}
		eventually(t, 60*time.Second, x.name+" reads the message after the removal", func() bool { return groupHas(t, x, g.ID, "the informer is out") })
	}
	t.Logf("%v: all remaining read", time.Since(start))
	eventually(t, 20*time.Second, "the removed member learns it", func() bool {
		gi, err := removed.m.Group(ctx, g.ID)
		return err == nil && gi.Gone
	})
	if groupHas(t, removed, g.ID, "the informer is out") {
		t.Fatal("the removed member read a message sent after its removal")
	}
	down.start()
	eventually(t, 60*time.Second, "the member that was down catches up", func() bool { return groupHas(t, down, g.ID, "the informer is out") })
	t.Logf("%v: caught up", time.Since(start))
	gi, err := down.m.Group(ctx, g.ID)
	if err != nil || len(gi.Members) != n-1 || gi.Epoch != 1 {
		t.Fatalf("down member's view: %+v %v", gi, err)
	}
	// The down member's own new key reaches the others.
	if _, err := down.m.GroupSend(ctx, g.ID, "back online"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the admin reads the returning member", func() bool { return groupHas(t, admin, g.ID, "back online") })
	if groupHas(t, removed, g.ID, "back online") {
		t.Fatal("the removed member read a later message")
	}
}
