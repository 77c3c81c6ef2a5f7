package app

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

func client(n *Node) *apiclient.Client { return apiclient.New(n.APIAddr, n.Token) }

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func apiStatus(err error) int {
	var e *apiclient.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// TestGroupsAndChannelsAPI drives groups and channels through the local
// API of two real nodes, as the CLI does.
func TestGroupsAndChannelsAPI(t *testing.T) {
	ctx := context.Background()
	a, b := client(startNode(t, "alice")), client(startNode(t, "bob"))
	inv, err := b.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddContact(ctx, inv.Link, "bob"); err != nil {
		t.Fatal(err)
	}
	g, err := a.CreateGroup(ctx, "Team")
	if err != nil {
		t.Fatal(err)
	}
	if g, err = a.GroupInvite(ctx, g.ID, "bob"); err != nil || len(g.Members) != 2 {
		t.Fatalf("invite: %+v %v", g, err)
	}
	poll(t, "bob joins", func() bool {
		gs, err := b.Groups(ctx)
		return err == nil && len(gs) == 1 && len(gs[0].Members) == 2
	})
	if _, err := b.GroupJoin(ctx, g.ID[:8]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GroupSend(ctx, "team", "standup at 10"); err != nil {
		t.Fatal(err)
	}
	poll(t, "bob reads", func() bool {
		conv, err := b.GroupMessages(ctx, g.ID, 0)
		return err == nil && len(conv.Messages) == 1 && conv.Messages[0].Text == "standup at 10" && conv.Messages[0].SenderName == "alice"
	})
	if _, err := b.GroupRename(ctx, g.ID, "Mine now"); apiStatus(err) != http.StatusForbidden {
		t.Errorf("non-admin rename: %v", err)
	}
	if _, err := a.Group(ctx, "no such group"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("unknown group: %v", err)
	}
	if _, err := a.GroupSend(ctx, g.ID, ""); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("empty message: %v", err)
	}
	if g, err = a.GroupRemove(ctx, g.ID, "bob"); err != nil || len(g.Members) != 1 || g.Epoch != 1 {
		t.Fatalf("remove: %+v %v", g, err)
	}

	ch, err := a.CreateChannel(ctx, "News", true)
	if err != nil || !ch.Owned || !ch.Private {
		t.Fatalf("create channel: %+v %v", ch, err)
	}
	link, err := a.ChannelInvite(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.FollowChannel(ctx, "samizdat:channel/xyz"); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("bad link: %v", err)
	}
	if f, err := b.FollowChannel(ctx, link.Link); err != nil || f.ID != ch.ID || f.Owned {
		t.Fatalf("follow: %+v %v", f, err)
	}
	if _, err := b.Post(ctx, ch.ID, "not the owner", false); apiStatus(err) != http.StatusForbidden {
		t.Errorf("follower posts: %v", err)
	}
	poll(t, "bob on the channel's topic", func() bool {
		cs, err := a.Channels(ctx)
		return err == nil && len(cs) == 1 && cs[0].Peers == 1
	})
	// No wait for a heartbeat: bob is among the topic's peers, and a post
	// is flood-published to every one of them (gossipsub's default).
	for _, p := range []apiclient.PostRequest{{Text: "bridge closed"}, {Text: "shelter now", Alert: true}} {
		if _, err := a.Post(ctx, ch.ID, p.Text, p.Alert); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "bob gets both posts", func() bool {
		ps, err := b.ChannelPosts(ctx, ch.ID, 0)
		return err == nil && len(ps.Posts) == 2 && ps.Posts[1].Alert && ps.Posts[1].Text == "shelter now"
	})
}
