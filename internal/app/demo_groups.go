package app

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/samizdat-im/samizdat/internal/messenger"
)

// demoGroupAndChannel shows a small group (one encryption per message,
// sender keys over the 1:1 sessions) and a broadcast channel with an
// alert post.
func demoGroupAndChannel(ctx context.Context, w io.Writer, alice, bob, carol *demoNode) error {
	fmt.Fprintln(w, "\nA group: alice creates \"Neighbours\" and invites bob and carol (over their 1:1 sessions)")
	g, err := alice.node.Messenger.CreateGroup(ctx, "Neighbours")
	if err != nil {
		return err
	}
	for _, who := range []string{"bob", "carol"} {
		if _, err := alice.node.Messenger.GroupAdd(ctx, g.ID, who); err != nil {
			return fmt.Errorf("alice invites %s: %w", who, err)
		}
	}
	t0 := time.Now()
	for _, p := range []*demoNode{bob, carol} {
		if err := demoWait(ctx, 30*time.Second, p.name+" joins the group", func() bool {
			gi, err := p.node.Messenger.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3
		}); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "  bob and carol joined in %v; every member sent its sender key to the others\n", time.Since(t0).Round(time.Millisecond))
	for _, p := range []*demoNode{alice, bob, carol} {
		if err := demoWait(ctx, 30*time.Second, p.name+" meets the others on the group's topic", func() bool {
			gi, err := p.node.Messenger.Group(ctx, g.ID)
			return err == nil && gi.Peers == 2
		}); err != nil {
			return err
		}
	}
	time.Sleep(1200 * time.Millisecond) // one gossipsub heartbeat: the mesh forms
	lines := []struct {
		from *demoNode
		text string
	}{
		{alice, "Water is off on our street until 6."},
		{bob, "I have two spare canisters, come by."},
		{carol, "Thanks! Coming at 5."},
	}
	for _, l := range lines {
		t0 := time.Now()
		if _, err := l.from.node.Messenger.GroupSend(ctx, g.ID, l.text); err != nil {
			return err
		}
		for _, p := range []*demoNode{alice, bob, carol} {
			if err := demoWait(ctx, 30*time.Second, p.name+" reads the group", func() bool {
				_, ms, err := p.node.Messenger.GroupMessages(ctx, g.ID, 0, 0)
				return err == nil && slices.ContainsFunc(ms, func(m messenger.GroupMessage) bool { return m.Text == l.text })
			}); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "  %s → group: %q  read by all in %v (encrypted once, published once)\n", l.from.name, l.text, time.Since(t0).Round(time.Millisecond))
	}

	fmt.Fprintln(w, "\nA channel: alice creates \"Town alerts\"; bob and carol follow it from its link")
	ch, err := alice.node.Messenger.CreateChannel(ctx, "Town alerts", false)
	if err != nil {
		return err
	}
	link, err := alice.node.Messenger.ChannelInvite(ctx, ch.ID)
	if err != nil {
		return err
	}
	for _, p := range []*demoNode{bob, carol} {
		if _, err := p.node.Messenger.FollowChannel(ctx, link); err != nil {
			return err
		}
	}
	if err := demoWait(ctx, 30*time.Second, "followers on the channel's topic", func() bool {
		cs, err := alice.node.Messenger.Channels(ctx)
		return err == nil && len(cs) == 1 && cs[0].Peers == 2
	}); err != nil {
		return err
	}
	time.Sleep(1200 * time.Millisecond) // one gossipsub heartbeat: the mesh forms
	events, stop := bob.node.Messenger.Subscribe()
	defer stop()
	posts := []struct {
		text  string
		alert bool
	}{
		{"Shelters are open at the school and the library.", false},
		{"AIR RAID ALERT: go to a shelter now.", true},
	}
	for i, p := range posts {
		t0 := time.Now()
		if _, err := alice.node.Messenger.Post(ctx, ch.ID, p.text, p.alert); err != nil {
			return err
		}
		for _, f := range []*demoNode{bob, carol} {
			if err := demoWait(ctx, 30*time.Second, f.name+" gets the post", func() bool {
				_, ps, err := f.node.Messenger.ChannelPosts(ctx, ch.ID, 0, 0)
				return err == nil && len(ps) > i
			}); err != nil {
				return err
			}
		}
		kind := "post"
		if p.alert {
			kind = "ALERT post"
		}
		fmt.Fprintf(w, "  alice → channel: %s %q  at both followers in %v (signed, hash-chained)\n", kind, p.text, time.Since(t0).Round(time.Millisecond))
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Type == messenger.EventPost && e.Alert {
				fmt.Fprintln(w, "  bob's node raised an alert event at once: a client shows it over everything else")
				return nil
			}
		case <-deadline:
			return fmt.Errorf("bob's node raised no alert event")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// demoWait polls cond until it holds.
func demoWait(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: timed out after %v waiting until %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
