package messenger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
)

// channelMediaNode is a media node whose channel file limit is max (0:
// the default).
func channelMediaNode(t testing.TB, name string, max int64) *tnode {
	dir := t.TempDir()
	return newNodeTuned(t, name, func(c *Config) {
		svc, err := media.New(media.Config{Dir: dir, Store: c.Store, Transport: c.Transport.(media.Transport), RetryInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Media, c.MaxChannelFileSize = svc, max
	})
}

// TestChannelPostFile: the owner of a private channel posts a file; it
// reaches a subscriber connected to the owner and one that hears the
// owner only through the first, each checks every chunk, and the owner
// uploads about one copy. A file over the channel limit is refused by the
// owner, and not fetched by a subscriber with a lower limit; a post's
// text cannot pose as a file body.
func TestChannelPostFile(t *testing.T) {
	ctx := context.Background()
	size := 3 << 20
	if raceBuild {
		size = 1 << 20
	}
	owner := channelMediaNode(t, "owner", int64(size)+1)
	a := channelMediaNode(t, "a", 0)
	b := channelMediaNode(t, "b", int64(size)/2) // takes small files only
	ci, err := owner.m.CreateChannel(ctx, "Photos from home", true)
	if err != nil {
		t.Fatal(err)
	}
	link, err := owner.m.ChannelInvite(ctx, ci.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b} {
		if _, err := n.m.FollowChannel(ctx, link); err != nil {
			t.Fatal(err)
		}
	}
	connect(t, a, owner)
	connect(t, b, a)
	eventually(t, 10*time.Second, "topic peers", func() bool {
		return channelTopicPeers(t, owner, ci.ID) >= 1 && channelTopicPeers(t, a, ci.ID) >= 2 && channelTopicPeers(t, b, ci.ID) >= 1
	})
	settleMesh()

	if _, err := owner.m.Post(ctx, ci.ID, "\x00not a file", false); err == nil {
		t.Fatal("a post starting with NUL was accepted")
	}
	big, _ := writeRandom(t, size+2)
	if _, err := owner.m.PostFile(ctx, ci.ID, big, "too big", false); !errors.Is(err, media.ErrTooLarge) {
		t.Fatalf("a file over the channel limit: %v", err)
	}
	if _, err := a.m.PostFile(ctx, ci.ID, big, "", false); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("a subscriber posts a file: %v", err)
	}

	// A small photo reaches both; a large file only a.
	small, smallData := writeRandom(t, 200<<10)
	sp, err := owner.m.PostFile(ctx, ci.ID, small, "the river at dawn", false)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.HasFile || sp.Text != "the river at dawn" {
		t.Fatalf("posted %+v", sp)
	}
	path, data := writeRandom(t, size)
	served0 := owner.m.cfg.Media.BytesServed()
	lp, err := owner.m.PostFile(ctx, ci.ID, path, "", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b} {
		eventually(t, 60*time.Second, n.name+" has the small file", func() bool {
			return transferOf(t, n, sp.Hash).State == media.StateComplete
		})
		out := filepath.Join(t.TempDir(), "saved")
		if err := n.m.SaveFile(ctx, sp.Hash, out); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, smallData) {
			t.Fatalf("%s's copy differs (%v)", n.name, err)
		}
		if tr := transferOf(t, n, sp.Hash); tr.Group != ci.ID || !tr.Incoming {
			t.Fatalf("%s's transfer: %+v", n.name, tr)
		}
	}
	eventually(t, 120*time.Second, "a has the large file", func() bool {
		return transferOf(t, a, lp.Hash).State == media.StateComplete
	})
	out := filepath.Join(t.TempDir(), "large")
	if err := a.m.SaveFile(ctx, lp.Hash, out); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a's copy of the large file differs (%v)", err)
	}
	// b has the post (an alert, with its caption empty) but not the file.
	eventually(t, 10*time.Second, "b has the large file's post", func() bool {
		_, ps, err := b.m.ChannelPosts(ctx, ci.ID, 0, 0)
		return err == nil && len(ps) == 2 && ps[1].HasFile && ps[1].Alert
	})
	if tr := transferOf(t, b, lp.Hash); tr.State != "" {
		t.Fatalf("b fetches a file over its channel limit: %+v", tr)
	}
	served := owner.m.cfg.Media.BytesServed() - served0
	t.Logf("channel file of %d bytes: the owner served %d bytes (%.2f×)", size, served, float64(served)/float64(size))
	if served > 2*int64(size) {
		t.Fatalf("the owner served %d bytes for a file of %d", served, size)
	}
}
