package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// GroupScaleOptions configure RunGroupScale.
type GroupScaleOptions struct {
	Members  int // group size, the admin included (default 1000)
	Messages int // measured messages to all (default 10)
	Log      io.Writer
}

// GroupScaleResult holds RunGroupScale's figures.
type GroupScaleResult struct {
	Members int
	// Build is the admin's time to add Members-2 contacts with one
	// `group add` (GroupAdd: ADD_MANY ops of up to wire.MaxAddBatch
	// members, one invitation to each new member with every op and our
	// sender key, the new cards announced once on the topic);
	// BuildPairwise and BuildSenderKey are the encryptions it took,
	// BuildBytes the 1:1 bytes it queued (invitations).
	Build                         time.Duration
	BuildPairwise, BuildSenderKey uint64
	BuildBytes                    uint64
	// AddOne is the admin's time to add the last member to the group of
	// Members-1 (the new op to every member, once; the invitation with
	// every op; the card announced).
	AddOne time.Duration
	// SendCPU is the process's CPU time per message while the message
	// goes out and reaches the members: the admin's GroupSend (one
	// sender-key encryption, one store transaction, one publish) and every
	// member host receiving, decrypting and forwarding it.
	SendCPU time.Duration
	// EncPerMessage is the encryptions (sender-key and 1:1, counted by
	// the messenger) per measured message.
	EncPerMessage float64
	// BytesPerMember is the gossipsub bytes (message copies and control)
	// each member host sent per message.
	BytesPerMember float64
	MessageBytes   int // one message on the wire
	// To99 is, per message, the time until 99 % of the other members have
	// decrypted it.
	To99 []time.Duration
	// Remove is the admin's time to remove one member: the op, a new
	// sender key and its distribution to every remaining member over the
	// 1:1 sessions, queued durably (what every member does on its own
	// device when it learns of a removal).
	Remove time.Duration
}

// Figures returns the result as suite figures.
func (r GroupScaleResult) Figures() []ScaleFigure {
	if r.Build == 0 || r.AddOne == 0 {
		return nil
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	n := r.Members
	out := []ScaleFigure{
		figure(fmt.Sprintf("group of %d: adding %d members with one `group add`, admin's time", n, n-2), r.Build.Seconds(), "s"),
		figure(fmt.Sprintf("group of %d: that add's encryptions, 1:1 + sender-key", n), float64(r.BuildPairwise+r.BuildSenderKey), ""),
		figure(fmt.Sprintf("group of %d: that add's 1:1 bytes queued per new member", n), float64(r.BuildBytes)/float64(max(1, n-2)), "B"),
		figure(fmt.Sprintf("group of %d: adding one member to %d", n, n-1), ms(r.AddOne), "ms"),
	}
	if r.SendCPU > 0 {
		out = append(out, figure(fmt.Sprintf("group of %d: CPU per message, admin + %d member hosts decrypting", n, n-1), ms(r.SendCPU), "ms"))
	}
	if len(r.To99) > 0 {
		out = append(out,
			targetMax(fmt.Sprintf("group of %d: encryptions per message", n), r.EncPerMessage, "", 1, "1"),
			figure(fmt.Sprintf("group of %d: gossipsub bytes sent per member per message (%d B on the wire)", n, r.MessageBytes), r.BytesPerMember, "B"),
			targetMax(fmt.Sprintf("group of %d: message to 99 %% of members, p50", n), ms(Percentile(r.To99, .5)), "ms", 1000, "≤ 1 s"))
	}
	if r.Remove > 0 {
		out = append(out, targetMax(fmt.Sprintf("group of %d: a removal re-keys (op + new key to %d members queued)", n, n-2), r.Remove.Seconds(), "s", 5, "< 5 s"))
	}
	return out
}

// benchMember is a member's account without a node: an identity, its
// prekeys and a signed card, enough for the admin to open a session.
type benchMember struct {
	link string
}

func newBenchMember(i int) (benchMember, error) {
	id, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		return benchMember{}, err
	}
	pk, err := handshake.NewPrekeys(rand.Reader, id, 0)
	if err != nil {
		return benchMember{}, err
	}
	now := time.Now()
	card, err := identity.SignCard(id, &identity.Card{Identity: id.Public(), Name: fmt.Sprintf("member%04d", i),
		Bundle: pk.Bundle(false), IssuedAt: now, ExpiresAt: now.Add(identity.DefaultCardLifetime)})
	if err != nil {
		return benchMember{}, err
	}
	link, err := identity.EncodeInvite(card, nil)
	return benchMember{link: link}, err
}

// RunGroupScale measures a group of many members end to end as far as one
// process allows: the admin is a full node; the other members are
// accounts with signed cards and prekeys (the admin runs the real PQXDH
// and ratchet for each) whose nodes are bare libp2p hosts on the group's
// topic, each holding the admin's sender key and decrypting every message
// in its topic validator. What the members' own nodes would do (answer,
// send their sender keys to each other) is not run: see the figures'
// notes in docs/BENCHMARKS.md.
func RunGroupScale(ctx context.Context, dir string, o GroupScaleOptions) (GroupScaleResult, error) {
	if o.Members <= 1 {
		o.Members = 1000
	}
	if o.Messages <= 0 {
		o.Messages = 10
	}
	r := GroupScaleResult{Members: o.Members}
	d := dir + "/admin"
	if _, err := Init(ctx, d, "admin", KeySource{NoPassphrase: true}); err != nil {
		return r, err
	}
	admin, err := Start(ctx, Options{Dir: d, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true})
	if err != nil {
		return r, err
	}
	defer admin.Close()
	m := admin.Messenger
	benchLogf(o.Log, "making %d member accounts", o.Members-1)
	ids := make([]string, 0, o.Members-1)
	for i := range o.Members - 1 {
		bm, err := newBenchMember(i)
		if err != nil {
			return r, err
		}
		c, err := m.AddContact(ctx, bm.link, "")
		if err != nil {
			return r, err
		}
		ids = append(ids, c.AccountID)
	}
	g, err := m.CreateGroup(ctx, "thousand")
	if err != nil {
		return r, err
	}
	// All but one with one add; the last one alone, once the hosts are up
	// (the outbox's first attempts at the invitations are over by then).
	benchLogf(o.Log, "adding %d members with one add", len(ids)-1)
	e0, t0 := m.GroupEncryptions(), time.Now()
	if _, err := m.GroupAdd(ctx, g.ID, ids[:len(ids)-1]...); err != nil {
		return r, fmt.Errorf("add %d members: %w", len(ids)-1, err)
	}
	r.Build = time.Since(t0)
	e1 := m.GroupEncryptions()
	r.BuildPairwise, r.BuildSenderKey, r.BuildBytes = e1.Pairwise-e0.Pairwise, e1.SenderKey-e0.SenderKey, e1.PairwiseBytes-e0.PairwiseBytes
	benchLogf(o.Log, "%d members added in %v (%d 1:1 + %d sender-key encryptions, %d KB queued)", len(ids)-1, r.Build.Round(time.Millisecond), r.BuildPairwise, r.BuildSenderKey, r.BuildBytes>>10)
	gi, err := m.Group(ctx, g.ID)
	if err != nil {
		return r, err
	}
	if len(gi.Members) != o.Members-1 {
		return r, fmt.Errorf("group has %d members, want %d", len(gi.Members), o.Members-1)
	}

	topic, newMember, err := m.GroupReader(ctx, g.ID)
	if err != nil {
		return r, err
	}
	others := o.Members - 1
	benchLogf(o.Log, "starting %d members' hosts", others)
	sw, err := newSwarm(ctx, others, 3, p2p.GossipParams{}, admin.P2P, topic, func(int) func([]byte) error {
		open := newMember()
		return func(data []byte) error { _, err := open(data); return err }
	}, groupMessageKey, o.Log)
	if err != nil {
		return r, err
	}
	defer sw.close()
	if err := sw.waitMeshed(ctx, time.Minute); err != nil {
		return r, err
	}
	benchLogf(o.Log, "adding one member")
	t0 = time.Now()
	if gi, err = m.GroupAdd(ctx, g.ID, ids[len(ids)-1]); err != nil {
		return r, fmt.Errorf("add one member: %w", err)
	}
	r.AddOne = time.Since(t0)
	if len(gi.Members) != o.Members {
		return r, fmt.Errorf("after adding one: %d members", len(gi.Members))
	}
	send := func(i int) (string, time.Time, time.Duration, error) {
		t0, c0 := time.Now(), processCPU()
		gm, err := m.GroupSend(ctx, g.ID, fmt.Sprintf("message %d to all: meeting moved to 7, same place; bring the documents", i))
		return gm.ID, t0, processCPU() - c0, err
	}
	for warm := 0; ; warm++ {
		id, _, _, err := send(-warm)
		if err != nil {
			return r, err
		}
		if got := sw.wait(ctx, id, others, 10*time.Second); len(got) == others {
			break
		} else if warm == 5 {
			return r, fmt.Errorf("warm-up messages reached %d of %d members", len(got), others)
		}
	}
	benchLogf(o.Log, "members meshed; sending %d messages", o.Messages)
	var cpu time.Duration
	enc0, bytes0 := m.GroupEncryptions(), sw.bytesSent()
	for i := range o.Messages {
		c0 := processCPU()
		id, t0, _, err := send(i)
		if err != nil {
			return r, err
		}
		got := sw.wait(ctx, id, others, 10*time.Second)
		cpu += processCPU() - c0
		n99 := ninetyNine(others)
		if len(got) < n99 {
			return r, fmt.Errorf("message %d reached %d of %d members in 10 s", i, len(got), others)
		}
		r.To99 = append(r.To99, arrival(t0, got, n99))
	}
	r.SendCPU = cpu / time.Duration(o.Messages)
	enc1 := m.GroupEncryptions()
	r.EncPerMessage = float64(enc1.SenderKey+enc1.Pairwise-enc0.SenderKey-enc0.Pairwise) / float64(o.Messages)
	r.BytesPerMember = float64(sw.bytesSent()-bytes0) / float64(others) / float64(o.Messages)
	r.MessageBytes = sw.size

	benchLogf(o.Log, "removing a member")
	t0 = time.Now()
	gi, err = m.GroupRemove(ctx, g.ID, ids[0])
	if err != nil {
		return r, err
	}
	r.Remove = time.Since(t0)
	if len(gi.Members) != o.Members-1 || gi.Epoch != 1 {
		return r, fmt.Errorf("after the removal: %d members, epoch %d", len(gi.Members), gi.Epoch)
	}
	return r, nil
}

// groupMessageKey is a group message's id as GroupSend returns it
// (messenger.groupMsgID).
func groupMessageKey(raw []byte) string { return messenger.GroupMessageID(raw) }
