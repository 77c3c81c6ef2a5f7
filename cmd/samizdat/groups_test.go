package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// eventuallyCLI polls cond until it holds.
func eventuallyCLI(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCLIGroupsAndChannels drives groups and channels through the real
// binary: two `samizdat up` daemons and the group/channel commands.
func TestCLIGroupsAndChannels(t *testing.T) {
	t.Parallel()
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.fails("groups and channels need it", "group", "list")
	alice.start()
	bob.start()
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")), "--name", "bob")

	var g struct {
		ID      string `json:"id"`
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	json.Unmarshal([]byte(alice.must("group", "create", "Night", "shift", "--json")), &g)
	if len(g.ID) != 64 || len(g.Members) != 1 {
		t.Fatalf("group create --json: %+v", g)
	}
	alice.must("group", "invite", "night shift", "bob")
	eventuallyQuick(t, "bob joins", func() (bool, bool) { return bob.quickGroupMembers(2) }, func() bool {
		var gs []struct {
			Members []any `json:"members"`
		}
		json.Unmarshal([]byte(bob.must("group", "list", "--json")), &gs)
		return len(gs) == 1 && len(gs[0].Members) == 2
	})
	bob.must("group", "join", g.ID[:8])
	bob.fails("only a group admin", "group", "rename", g.ID, "mine")
	alice.fails("no such group", "group", "show", "nope")
	if id := strings.TrimSpace(alice.must("group", "send", g.ID, "gate", "code", "4711")); len(id) != 32 {
		t.Fatalf("group send printed %q", id)
	}
	eventuallyQuick(t, "bob reads the group", func() (bool, bool) { return bob.quickGroupText(g.ID, "gate code 4711") }, func() bool {
		return strings.Contains(bob.must("group", "messages", g.ID), "gate code 4711")
	})

	var ch struct {
		ID      string `json:"id"`
		Private bool   `json:"private"`
		Peers   int    `json:"peers"`
	}
	json.Unmarshal([]byte(alice.must("channel", "create", "Town", "alerts", "--private", "--json")), &ch)
	if len(ch.ID) != 64 || !ch.Private {
		t.Fatalf("channel create --json: %+v", ch)
	}
	link := strings.TrimSpace(alice.must("channel", "invite", "town alerts"))
	if !strings.HasPrefix(link, "samizdat:channel/") {
		t.Fatalf("channel invite: %q", link)
	}
	bob.fails("not a samizdat channel link", "channel", "follow", "samizdat:nothing")
	bob.must("channel", "follow", link)
	bob.fails("only the channel's owner", "channel", "post", ch.ID, "hi")
	eventuallyQuick(t, "bob on the channel's topic", func() (bool, bool) { return alice.quickChannelPeers(1) }, func() bool {
		var cs []struct {
			Peers int `json:"peers"`
		}
		json.Unmarshal([]byte(alice.must("channel", "list", "--json")), &cs)
		return len(cs) == 1 && cs[0].Peers == 1
	})
	// No wait for a heartbeat: bob is among the topic's peers, and a post
	// is flood-published to every one of them (gossipsub's default).
	if seq := strings.TrimSpace(alice.must("channel", "post", ch.ID, "--alert", "shelter", "now")); seq != "0" {
		t.Fatalf("channel post printed %q", seq)
	}
	eventuallyCLI(t, "bob gets the alert", func() bool {
		var ps struct {
			Posts []struct {
				Text  string `json:"text"`
				Alert bool   `json:"alert"`
			} `json:"posts"`
		}
		json.Unmarshal([]byte(bob.must("channel", "posts", ch.ID, "--json")), &ps)
		return len(ps.Posts) == 1 && ps.Posts[0].Alert && ps.Posts[0].Text == "shelter now"
	})
	if out := bob.must("channel", "posts", ch.ID); !strings.HasPrefix(out, "!    0") {
		t.Fatalf("channel posts: %q", out)
	}
}
