package app

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestGroupAddSeveralAPI: POST …/members with several contacts adds them
// all at once (bob and carol, strangers to each other); a list naming a
// member already in adds nobody (400); bob and carol read each other, and
// no card announcement shows as a message.
func TestGroupAddSeveralAPI(t *testing.T) {
	ctx := context.Background()
	a, b, c := client(startNode(t, "alice")), client(startNode(t, "bob")), client(startNode(t, "carol"))
	for _, p := range []struct {
		cl   *apiclient.Client
		name string
	}{{b, "bob"}, {c, "carol"}} {
		inv, err := p.cl.Invite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.AddContact(ctx, inv.Link, p.name); err != nil {
			t.Fatal(err)
		}
	}
	g, err := a.CreateGroup(ctx, "Crew")
	if err != nil {
		t.Fatal(err)
	}
	if g, err = a.GroupInvite(ctx, g.ID, "bob", "carol"); err != nil || len(g.Members) != 3 {
		t.Fatalf("adding two: %+v %v", g, err)
	}
	var ae *apiclient.Error
	if _, err := a.GroupInvite(ctx, g.ID, "carol", "bob"); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Fatalf("adding members again: %v", err)
	}
	for _, cl := range []*apiclient.Client{b, c} {
		poll(t, "joins", func() bool {
			gi, err := cl.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3 && !gi.Gone
		})
	}
	if _, err := b.GroupSend(ctx, g.ID, "bob here"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GroupSend(ctx, g.ID, "carol here"); err != nil {
		t.Fatal(err)
	}
	texts := func(cl *apiclient.Client) []string {
		conv, err := cl.GroupMessages(ctx, g.ID, 0)
		if err != nil {
			return nil
		}
		var out []string
		for _, m := range conv.Messages {
			out = append(out, m.Text)
		}
		return out
	}
	poll(t, "carol reads bob", func() bool { return slices.Contains(texts(c), "bob here") })
	poll(t, "bob reads carol", func() bool { return slices.Contains(texts(b), "carol here") })
	for _, cl := range []*apiclient.Client{a, b, c} {
		if slices.Contains(texts(cl), "") {
			t.Errorf("an empty message shows: %q", texts(cl))
		}
	}
}
