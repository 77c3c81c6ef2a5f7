package messenger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// TestChannelWithheldPostAndForgery: a public channel with 50 subscribers.
// 25 of them ("victims") reach the channel only through 5 censoring
// subscribers that withhold one post (an alert) and serve tampered
// history. Every victim still gets the post: the next post's hash chain
// shows the gap, the censor's tampered history is rejected, and the post
// is fetched from a subscriber named in the invite and verified. Then a
// forger publishes posts with a bad signature and with another key on the
// topic: every subscriber that receives them rejects them, logging no
// content, and none stores them.
func TestChannelWithheldPostAndForgery(t *testing.T) {
	nCore, nVictims, nCensors := 25, 25, 5 // 50 subscribers
	if raceBuild {
		nCore, nVictims, nCensors = 10, 10, 2
	}
	ctx := context.Background()
	logs := map[*tnode]*logRecorder{}
	mk := func(name string) *tnode {
		rec := &logRecorder{}
		n := newNodeTuned(t, name, func(c *Config) { c.Logger = slog.New(rec) })
		logs[n] = rec
		return n
	}
	owner := mk("owner")
	ci, err := owner.m.CreateChannel(ctx, "Alerts", false)
	if err != nil {
		t.Fatal(err)
	}
	ownerLink, err := owner.m.ChannelInvite(ctx, ci.ID)
	if err != nil {
		t.Fatal(err)
	}
	var core, victims, censors []*tnode
	for i := range nCore {
		s := mk(fmt.Sprintf("s%d", i))
		if _, err := s.m.FollowChannel(ctx, ownerLink); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			connect(t, s, owner)
		}
		for _, k := range []int{i - 1, i - 2} {
			if k >= 0 {
				connect(t, s, core[k])
			}
		}
		core = append(core, s)
	}
	withheld := func(item []byte) bool {
		p, err := channel.ParsePost(item)
		return err == nil && p.Seq == 1
	}
	tamper := func(item []byte) []byte {
		out := bytes.Clone(item)
		out[len(out)-channel.SignatureSize-1] ^= 1 // the last body byte
		return out
	}
	for i := range nCensors {
		c := mk(fmt.Sprintf("censor%d", i))
		c.m.bc().drop, c.m.bc().tamper = withheld, tamper
		if _, err := c.m.FollowChannel(ctx, ownerLink); err != nil {
			t.Fatal(err)
		}
		connect(t, c, core[i])
		connect(t, c, core[(i+nCore/2)%nCore])
		censors = append(censors, c)
	}
	// The victims follow through an invite made by a subscriber (s0): it
	// names s0 and the owner as sources of history.
	s0Link, err := core[0].m.ChannelInvite(ctx, ci.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nVictims {
		v := mk(fmt.Sprintf("v%d", i))
		connect(t, v, censors[i%nCensors])
		if _, err := v.m.FollowChannel(ctx, s0Link); err != nil {
			t.Fatal(err)
		}
		victims = append(victims, v)
	}
	subscribers := append(slices.Clone(core), victims...)
	everyone := append(slices.Clone(subscribers), censors...)
	eventually(t, 20*time.Second, "topic peers everywhere", func() bool {
		for _, n := range everyone {
			if channelTopicPeers(t, n, ci.ID) == 0 {
				return false
			}
		}
		return true
	})
	settleMesh(t, ci.ID, append([]*tnode{owner}, everyone...)...)
	lastSeq := func(n *tnode) int64 {
		cs, err := n.m.Channels(ctx)
		if err != nil || len(cs) != 1 {
			t.Fatalf("%s: channels %v %v", n.name, cs, err)
		}
		return cs[0].LastSeq
	}
	postCount := func(n *tnode) int {
		cs, _ := n.m.Channels(ctx)
		return cs[0].Posts
	}
	start := time.Now()
	waitAll := func(nodes []*tnode, posts int, what string) {
		t.Helper()
		defer func() { t.Logf("%v: %s", time.Since(start), what) }()
		eventually(t, 30*time.Second, what, func() bool {
			for _, n := range nodes {
				if postCount(n) != posts {
					return false
				}
			}
			return true
		})
	}

	if _, err := owner.m.Post(ctx, ci.ID, "p0: sirens are tested at noon", false); err != nil {
		t.Fatal(err)
	}
	waitAll(everyone, 1, "everyone has the first post")

	if _, err := owner.m.Post(ctx, ci.ID, "p1: ALERT missiles, shelter now", true); err != nil {
		t.Fatal(err)
	}
	waitAll(core, 2, "the core subscribers have the alert")
	for _, v := range victims {
		if got := v.n.ConnectedPeers(); len(got) != 1 || lastSeq(v) != 0 {
			t.Fatalf("%s: %d peers, last seq %d: the censor should be its only way in", v.name, len(got), lastSeq(v))
		}
	}
	for _, c := range censors {
		if postCount(c) != 1 {
			t.Fatalf("%s has the withheld post", c.name)
		}
	}

	if _, err := owner.m.Post(ctx, ci.ID, "p2: all clear", false); err != nil {
		t.Fatal(err)
	}
	waitAll(subscribers, 3, "every subscriber has all three posts")
	rejected := 0
	for _, v := range victims {
		if !hasPosts(t, v, ci.ID, "p0: sirens are tested at noon", "p1: ALERT missiles, shelter now", "p2: all clear") {
			t.Fatalf("%s: posts %q", v.name, postTexts(t, v, ci.ID))
		}
		rejected += logs[v].count("historyRejected")
	}
	if rejected == 0 {
		t.Error("no victim saw (and rejected) the censors' tampered history")
	}

	// The forger knows the topic (it holds the public link) but not the
	// owner's key.
	forger, err := p2p.New(ctx, p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Close()
	var ownerPub ed25519.PublicKey
	var last *channel.Post
	_ = owner.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolveChannel(tx, ci.ID)
		if err != nil {
			return err
		}
		ownerPub = c.OwnerPub
		lp, err := tx.LastChannelPost(c.ID)
		if err == nil {
			last, err = channel.ParsePost(lp.Post)
		}
		return err
	})
	topic, err := forger.Join(channelTopic(ownerPub, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Close()
	targets := []*tnode{core[1], core[2], victims[3]}
	for _, n := range targets {
		if err := forger.Connect(ctx, n.n.PeerID(), n.n.Addrs()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "forger on the topic", func() bool { return len(topic.Peers()) == len(targets) })
	// A post with the next sequence number, signed by another key but
	// naming the channel; and a genuine post with its body changed.
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged := &channel.Post{ChannelID: last.ChannelID, Seq: last.Seq + 1, Prev: last.Hash(), Timestamp: time.Now().UnixMilli(), Priority: channel.PriorityAlert, Body: []byte("FORGED evacuate to the bridge")}
	good, err := channel.NewPost(channel.OwnerKey(otherKey), otherKey.Public().(ed25519.PublicKey), nil, 0, channel.PriorityAlert, []byte("FORGED evacuate to the bridge"))
	if err != nil {
		t.Fatal(err)
	}
	forged.Signature = good.Signature
	altered := *last
	altered.Body = []byte("FORGED all clear, go outside")
	// The first messages on a fresh connection may go out before the
	// receiver has set up its side: publish until each neighbour judged
	// both (each round a little different, or the forger's own gossipsub
	// would drop the repeats as already seen).
	eventually(t, 20*time.Second, "the forger's neighbours reject both posts", func() bool {
		forged.Timestamp++
		altered.Timestamp++
		for _, p := range []*channel.Post{forged, &altered} {
			if err := topic.Publish(ctx, p.Marshal()); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond)
		for _, n := range targets {
			if logs[n].count("postRejected") < 2 {
				return false
			}
		}
		return true
	})
	if _, err := owner.m.Post(ctx, ci.ID, "p3: water at the school", false); err != nil {
		t.Fatal(err)
	}
	waitAll(subscribers, 4, "every subscriber has the owner's next post")
	for _, n := range everyone {
		for _, p := range postTexts(t, n, ci.ID) {
			if bytes.Contains([]byte(p), []byte("FORGED")) {
				t.Fatalf("%s stored a forged post", n.name)
			}
		}
		if logs[n].contains("FORGED") || logs[n].contains("ALERT missiles") {
			t.Fatalf("%s logged post content", n.name)
		}
	}
}
