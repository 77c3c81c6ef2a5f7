package messenger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
)

// TestGroupFileWaitsForOffline (issue 16, "large files wait … at group
// members …, and say so"): a member is offline when a file goes to the
// group. The sender's transfer says how many members have it and that it
// waits for one offline member; once that member is back it fetches the
// file and the sender's transfer says every member has it — also after
// the sender restarts.
func TestGroupFileWaitsForOffline(t *testing.T) {
	ctx := context.Background()
	const n = 4
	nodes := make([]*tnode, n)
	for i := range nodes {
		dir := t.TempDir()
		nodes[i] = newNodeTuned(t, fmt.Sprintf("m%d", i), func(c *Config) {
			svc, err := media.New(media.Config{Dir: dir, Store: c.Store, Transport: c.Transport.(media.Transport),
				RetryInterval: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			c.Media = svc
			c.FetchInterval = 200 * time.Millisecond
		})
	}
	admin, sender, down := nodes[0], nodes[1], nodes[3]
	for _, x := range nodes[1:] {
		addContact(t, admin, x)
	}
	g, err := admin.m.CreateGroup(ctx, "Family abroad")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range nodes[1:] {
		if _, err := admin.m.GroupAdd(ctx, g.ID, x.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range nodes {
		eventually(t, 60*time.Second, x.name+" sees every member", func() bool {
			gi, err := x.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == n
		})
	}
	if _, err := sender.m.GroupSend(ctx, g.ID, "photos coming"); err != nil {
		t.Fatal(err)
	}
	for _, x := range nodes {
		eventually(t, 60*time.Second, x.name+" reads the sender", func() bool { return groupHas(t, x, g.ID, "photos coming") })
	}

	down.pinAddr()
	down.stop()
	path, _ := writeRandom(t, 3*media.ChunkSize+100)
	gm, err := sender.m.GroupSendFile(ctx, g.ID, path, "the album")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*tnode{nodes[0], nodes[2]} {
		eventually(t, 60*time.Second, x.name+" has the file", func() bool {
			return transferOf(t, x, gm.ID).State == media.StateComplete
		})
	}
	want := media.Holders{Members: 3, Done: 2, Offline: 1}
	var last *media.Holders
	eventually(t, 60*time.Second, fmt.Sprintf("the sender's transfer says %+v", want), func() bool {
		last = transferOf(t, sender, gm.ID).Holders
		return last != nil && *last == want
	})

	down.start()
	eventually(t, 60*time.Second, "the member that was offline has the file", func() bool {
		return transferOf(t, down, gm.ID).State == media.StateComplete
	})
	all := media.Holders{Members: 3, Done: 3}
	// The offline member is asked again after its back-off (at most 32
	// check intervals).
	eventually(t, 60*time.Second, "the sender's transfer says every member has it", func() bool {
		last = transferOf(t, sender, gm.ID).Holders
		return last != nil && *last == all
	})
	sender.start2()
	eventually(t, 30*time.Second, "after a restart too", func() bool {
		last = transferOf(t, sender, gm.ID).Holders
		return last != nil && *last == all
	})
	if tr := transferOf(t, nodes[2], gm.ID); tr.Holders != nil {
		t.Fatalf("a receiver's transfer has holders: %+v", tr.Holders)
	}
}
