package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/store"
)

// logRecorder is a slog handler that keeps every record as text, so tests
// can count events and check that no content reached the log.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if strings.HasPrefix(r, msg+" ") || r == msg {
			n++
		}
	}
	return n
}

func (l *logRecorder) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// settleMesh waits until a post that the channel's owner (nodes[0])
// publishes reaches each of the other nodes as it passes: the owner sends
// its own posts to all its topic peers, and each node forwards them to
// its mesh (grafted in gossipsub's heartbeats). Before, a node outside
// every mesh hears of a post only as gossip at the next heartbeat, and
// not at all if it is grafted in that heartbeat; it finds the post at its
// next history check, seconds later. (This was a 1.2 s sleep, one
// heartbeat, which a loaded machine can outlast.)
func settleMesh(t testing.TB, ref string, nodes ...*tnode) {
	t.Helper()
	topic := channelTopicOf(t, nodes[0], ref)
	eventually(t, 20*time.Second, "the owner's posts pushed to every node", func() bool {
		byID := map[string]*tnode{}
		for _, n := range nodes[1:] {
			byID[n.n.PeerID()] = n
		}
		reached := map[*tnode]bool{}
		next := []*tnode{}
		visit := func(peers []string) {
			for _, p := range peers {
				if n := byID[p]; n != nil && !reached[n] {
					reached[n] = true
					next = append(next, n)
				}
			}
		}
		visit(nodes[0].n.TopicPeers(topic))
		for len(next) > 0 {
			n := next[0]
			next = next[1:]
			visit(n.n.MeshPeers(topic))
		}
		return len(reached) == len(nodes)-1
	})
}

// channelTopicOf returns the gossipsub topic of n's channel ref.
func channelTopicOf(t testing.TB, n *tnode, ref string) string {
	t.Helper()
	var k chanKeys
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := resolveChannel(tx, ref)
		if err == nil {
			k = keysOf(c)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return k.topic
}

func connect(t testing.TB, a, b *tnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.n.Connect(ctx, b.n.PeerID(), b.n.Addrs()); err != nil {
		t.Fatalf("%s connects to %s: %v", a.name, b.name, err)
	}
}

func postTexts(t testing.TB, n *tnode, ref string) []string {
	t.Helper()
	_, ps, err := n.m.ChannelPosts(context.Background(), ref, 0, 0)
	if err != nil {
		t.Fatalf("%s: posts: %v", n.name, err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Text
	}
	return out
}

func hasPosts(t testing.TB, n *tnode, ref string, want ...string) bool {
	return strings.Join(postTexts(t, n, ref), "|") == strings.Join(want, "|")
}

// channelTopicPeers returns how many topic peers n knows for a channel.
func channelTopicPeers(t testing.TB, n *tnode, ref string) int {
	t.Helper()
	var k chanKeys
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := resolveChannel(tx, ref)
		if err == nil {
			k = keysOf(c)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	j := n.m.joinedTopic(k.topic)
	if j == nil || j.topic == nil {
		return 0
	}
	return len(j.topic.Peers())
}

// TestChannelPrivate: a private channel's posts reach followers, in order,
// with the alert flag; a follower that was down catches up from history;
// only the owner posts; bad links are refused.
func TestChannelPrivate(t *testing.T) {
	ctx := context.Background()
	owner, a, b := newNode(t, "owner"), newNode(t, "a"), newNode(t, "b")
	ci, err := owner.m.CreateChannel(ctx, "Town alerts", true)
	if err != nil {
		t.Fatal(err)
	}
	if !ci.Owned || !ci.Private || ci.LastSeq != -1 {
		t.Fatalf("created %+v", ci)
	}
	link, err := owner.m.ChannelInvite(ctx, "town alerts")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b} {
		fi, err := n.m.FollowChannel(ctx, link)
		if err != nil {
			t.Fatal(err)
		}
		if fi.ID != ci.ID || fi.Owned || !fi.Private {
			t.Fatalf("followed %+v", fi)
		}
	}
	connect(t, a, owner)
	connect(t, b, a) // b hears the owner only through a
	eventually(t, 10*time.Second, "topic peers", func() bool {
		return channelTopicPeers(t, owner, ci.ID) == 1 && channelTopicPeers(t, a, ci.ID) == 2 && channelTopicPeers(t, b, ci.ID) == 1
	})
	settleMesh(t, ci.ID, owner, a, b)
	events, stop := b.m.Subscribe()
	defer stop()
	if _, err := owner.m.Post(ctx, ci.ID, "water at the school", false); err != nil {
		t.Fatal(err)
	}
	p, err := owner.m.Post(ctx, ci.ID, "air raid: shelter now", true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Seq != 1 || !p.Alert {
		t.Fatalf("posted %+v", p)
	}
	for _, n := range []*tnode{a, b} {
		eventually(t, 10*time.Second, n.name+" has both posts", func() bool {
			return hasPosts(t, n, ci.ID, "water at the school", "air raid: shelter now")
		})
	}
	alert := false
	for !alert {
		select {
		case e := <-events:
			alert = e.Type == EventPost && e.Alert && e.Channel == ci.ID
		case <-time.After(5 * time.Second):
			t.Fatal("no alert event")
		}
	}
	if _, err := a.m.Post(ctx, ci.ID, "not mine", false); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("follower posts: %v", err)
	}
	for _, bad := range []string{"", "samizdat:channel/", "samizdat:channel/!!", link[:len(link)-5], "samizdat:xyz"} {
		if _, err := a.m.FollowChannel(ctx, bad); !errors.Is(err, ErrBadChannelLink) {
			t.Errorf("follow %q: %v", bad, err)
		}
	}
	// b goes down; the owner posts; b comes back and catches up from a.
	b.pinAddr()
	b.stop()
	if _, err := owner.m.Post(ctx, ci.ID, "all clear", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a has the third post", func() bool { return len(postTexts(t, a, ci.ID)) == 3 })
	b.start()
	eventually(t, 20*time.Second, "b catches up", func() bool {
		return hasPosts(t, b, ci.ID, "water at the school", "air raid: shelter now", "all clear")
	})
	// On disk and on the wire, a private channel's text is encrypted.
	_, raw, _ := a.m.ChannelPosts(ctx, ci.ID, 0, 0)
	var stored []byte
	_ = a.st.View(ctx, func(tx *store.Tx) error {
		ps, err := tx.ChannelPosts(mustHex(t, ci.ID), 0, 0)
		if len(ps) > 0 {
			stored = ps[1].Post
		}
		return err
	})
	if len(raw) != 3 || strings.Contains(string(stored), "air raid") {
		t.Fatalf("private post stored in clear")
	}
	if pp, err := channel.ParsePost(stored); err != nil || pp.Priority != channel.PriorityAlert {
		t.Fatalf("stored post: %v", err)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMissingSeqs(t *testing.T) {
	for _, c := range []struct {
		seqs []uint64
		want string
	}{
		{nil, "[]"},
		{[]uint64{0}, "[]"},
		{[]uint64{2}, "[0 1]"},
		{[]uint64{0, 1, 4, 6}, "[2 3 5]"},
		{[]uint64{1000}, fmt.Sprint(seqRange(501, 1000))},
		{[]uint64{600, 1000}, fmt.Sprint(append(seqRange(501, 600), seqRange(601, 1000)...))},
	} {
		got := missingSeqs(c.seqs, 1000)
		if got == nil {
			got = []uint64{}
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("missingSeqs(%v) = %v, want %s", c.seqs, got, c.want)
		}
	}
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s < to; s++ {
		out = append(out, s)
	}
	return out
}
