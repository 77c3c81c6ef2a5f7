package messenger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// BenchmarkChannelPropagation100 is issue 5's channel figure: one post by
// a real owner node (signed, stored, published) reaching 100 subscriber
// nodes on loopback, each verifying it in its topic validator (as
// channels.go does) before forwarding; subscribers do not store posts
// here. Each subscriber dials 3 random others or the owner, so most posts
// take several hops. Reported: the time until 99 of the 100 have the post
// (median over the b.N posts), and the gossipsub bytes each subscriber
// sent per post (messages and control). Run it as
//
//	go test -run '^$' -bench ChannelPropagation100 -benchtime 50x ./internal/messenger
func BenchmarkChannelPropagation100(b *testing.B) {
	const subs = 100
	ctx := context.Background()
	owner := newNode(b, "owner")
	ci, err := owner.m.CreateChannel(ctx, "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	var k chanKeys
	_ = owner.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolveChannel(tx, ci.ID)
		if err == nil {
			k = keysOf(c)
		}
		return err
	})
	var mu sync.Mutex
	got := map[uint64]int{} // seq → subscribers that have it
	var nodes []*p2p.Node
	for i := range subs {
		n, err := p2p.New(ctx, p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		t, err := n.Join(k.topic, func(_ context.Context, _ string, data []byte) p2p.Verdict {
			if _, err := k.verify(data); err != nil {
				return p2p.Reject
			}
			return p2p.Accept
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { t.Close() })
		go func() {
			for {
				m, err := t.Next(ctx)
				if err != nil {
					return
				}
				if p, err := channel.ParsePost(m.Data); err == nil {
					mu.Lock()
					got[p.Seq]++
					mu.Unlock()
				}
			}
		}()
		peers := []string{owner.n.PeerID()}
		addrs := [][]string{owner.n.Addrs()}
		if i > 0 {
			peers, addrs = nil, nil
			for _, j := range mrand.Perm(i)[:min(3, i)] {
				peers, addrs = append(peers, nodes[j].PeerID()), append(addrs, nodes[j].Addrs())
			}
			if i%10 == 0 {
				peers, addrs = append(peers, owner.n.PeerID()), append(addrs, owner.n.Addrs())
			}
		}
		for j := range peers {
			if err := n.Connect(ctx, peers[j], addrs[j]); err != nil {
				b.Fatal(err)
			}
		}
		nodes = append(nodes, n)
	}
	time.Sleep(3 * time.Second) // three heartbeats: the meshes form
	sent := func() int64 {
		var s int64
		for _, n := range nodes {
			s += n.PubSubBytesSent()
		}
		return s
	}
	before := sent()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p, err := owner.m.Post(ctx, ci.ID, fmt.Sprintf("post %d: an alert of typical length, some two hundred bytes of text that people need to read at once, with a place name and a time in it", i), i%2 == 0)
		if err != nil {
			b.Fatal(err)
		}
		for {
			mu.Lock()
			n := got[p.Seq]
			mu.Unlock()
			if n >= subs*99/100 {
				break
			}
			if time.Since(t0) > 10*time.Second {
				b.Fatalf("post %d reached %d subscribers in 10 s", p.Seq, n)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-to-99%-p50")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "ms-to-99%-p90")
	b.ReportMetric(float64(sent()-before)/float64(subs)/float64(b.N), "bytes-sent/node/post")
}

// BenchmarkGroupSend100 is issue 5's group figure: the sender's CPU time
// for one message to a group of 100 members (the message is encrypted
// once with the sender key, stored, and published once; nobody is on the
// topic here, so no network work is counted). The members are real
// identities with signed cards, added by signed ops. Run it as
//
//	go test -run '^$' -bench GroupSend100 -benchtime 2000x ./internal/messenger
func BenchmarkGroupSend100(b *testing.B) {
	ctx := context.Background()
	admin := newNode(b, "admin")
	g, err := admin.m.CreateGroup(ctx, "hundred")
	if err != nil {
		b.Fatal(err)
	}
	gid := mustHex(b, g.ID)
	err = admin.st.Update(ctx, func(tx *store.Tx) error {
		st, err := admin.m.loadState(tx, gid)
		if err != nil {
			return err
		}
		for i := range 99 {
			id, _ := keys.GenerateIdentity(rand.Reader)
			card, err := identity.SignCard(id, &identity.Card{Identity: id.Public(), Name: fmt.Sprintf("member%d", i), IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				return err
			}
			op := &wirepb.GroupOp{GroupId: gid, Kind: wirepb.GroupOp_KIND_ADD, MemberCard: card}
			st.nextOp(op)
			raw := admin.m.signOp(op)
			h := sha256.Sum256(raw)
			if _, err := tx.PutGroupOp(gid, h[:], raw); err != nil {
				return err
			}
			if st, err = admin.m.loadState(tx, gid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	admin.m.groups.drop(gid)
	if gi, err := admin.m.Group(ctx, g.ID); err != nil || len(gi.Members) != 100 {
		b.Fatalf("group of %d: %v", len(gi.Members), err)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	text := "meeting moved to 7, same place; bring the documents and do not forward this"
	b.ResetTimer()
	c0 := cpu()
	for i := 0; i < b.N; i++ {
		if _, err := admin.m.GroupSend(ctx, g.ID, text); err != nil {
			b.Fatal(err)
		}
	}
	c1 := cpu()
	b.StopTimer()
	b.ReportMetric(float64((c1-c0).Microseconds())/float64(b.N), "cpu-µs/msg")
}
