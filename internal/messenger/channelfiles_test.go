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
// uploads at most two copies. A file over the channel limit is refused by the
// owner, and not fetched by a subscriber with a lower limit; a post's
// text cannot pose as a file body. A late follower gets the files too.
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
	settleMesh(t, ci.ID, owner, a, b)

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

	// A late follower gets the posts from history, and their files from
	// the subscriber it knows.
	c := channelMediaNode(t, "c", 0)
	if _, err := c.m.FollowChannel(ctx, link); err != nil {
		t.Fatal(err)
	}
	connect(t, c, a)
	eventually(t, 60*time.Second, "the late follower has both files", func() bool {
		return transferOf(t, c, sp.Hash).State == media.StateComplete && transferOf(t, c, lp.Hash).State == media.StateComplete
	})
}

// channelFileRun makes a public channel with n subscribers, each
// connected to the owner and to the subscriber before it (so that
// gossipsub shows each some other subscribers), posts a file of size
// bytes and waits until every subscriber holds it. It returns the time
// from the post until then and the bytes of chunks the owner served.
func channelFileRun(tb testing.TB, n, size int, star bool) (time.Duration, int64) {
	ctx := context.Background()
	owner := channelMediaNode(tb, "owner", 0)
	ci, err := owner.m.CreateChannel(ctx, "News from home", false)
	if err != nil {
		tb.Fatal(err)
	}
	link, err := owner.m.ChannelInvite(ctx, ci.ID)
	if err != nil {
		tb.Fatal(err)
	}
	subs := make([]*tnode, n)
	for i := range subs {
		subs[i] = channelMediaNode(tb, "sub"+string(rune('a'+i)), 0)
		if _, err := subs[i].m.FollowChannel(ctx, link); err != nil {
			tb.Fatal(err)
		}
		connect(tb, subs[i], owner)
		if i > 0 && !star {
			connect(tb, subs[i], subs[i-1])
		}
	}
	eventually(tb, 20*time.Second, "topic peers", func() bool {
		if channelTopicPeers(tb, owner, ci.ID) < n {
			return false
		}
		for i, s := range subs {
			want := 2
			if i > 0 && i < n-1 {
				want = 3
			}
			if star {
				want = 1
			}
			if channelTopicPeers(tb, s, ci.ID) < want {
				return false
			}
		}
		return true
	})
	settleMesh(tb, ci.ID, append([]*tnode{owner}, subs...)...)
	path, data := writeRandom(tb, size)
	served0 := owner.m.cfg.Media.BytesServed()
	start := time.Now()
	p, err := owner.m.PostFile(ctx, ci.ID, path, "", false)
	if err != nil {
		tb.Fatal(err)
	}
	eventually(tb, 90*time.Second, "every subscriber has the file", func() bool {
		for _, s := range subs {
			if transferOf(tb, s, p.Hash).State != media.StateComplete {
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	out := filepath.Join(tb.TempDir(), "saved")
	if err := subs[n-1].m.SaveFile(ctx, p.Hash, out); err != nil {
		tb.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		tb.Fatalf("the last subscriber's copy differs (%v)", err)
	}
	return took, owner.m.cfg.Media.BytesServed() - served0
}

// TestChannelFileSwarm: a file posted on a channel is uploaded about once
// by its owner; the subscribers take the rest from each other.
func TestChannelFileSwarm(t *testing.T) {
	n, size := 8, 8<<20
	if raceBuild {
		n, size = channelServeAll+1, 2<<20 // over the small-channel rule
	}
	took, served := channelFileRun(t, n, size, false)
	t.Logf("%d subscribers, %d MiB: all have it after %v; the owner served %d bytes (%.2f× the file)",
		n, size>>20, took, served, float64(served)/float64(size))
	if served > 2*int64(size) {
		t.Fatalf("the owner served %d bytes for a file of %d to %d subscribers", served, size, n)
	}
}

// TestChannelFileStar: in a small channel whose subscribers know no one
// but the owner (each connected to it only, as after following its
// invite), every subscriber gets the file from the owner without waiting
// for the seed budget's refill (2 minutes: the run's 90 s bound).
func TestChannelFileStar(t *testing.T) {
	n, size := channelServeAll, 2<<20
	took, served := channelFileRun(t, n, size, true)
	t.Logf("%d subscribers knowing only the owner, %d MiB: all have it after %v; the owner served %d bytes (%.2f× the file)",
		n, size>>20, took, served, float64(served)/float64(size))
	if served > int64(n+1)*int64(size) {
		t.Fatalf("the owner served %d bytes for a file of %d to %d subscribers", served, size, n)
	}
}
