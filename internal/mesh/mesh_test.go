package mesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/samizdat-im/samizdat/internal/mailbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// inbox records what a mesh hands to one of its owners.
type inbox struct {
	mu   sync.Mutex
	envs [][]byte
}

func (b *inbox) deliver(_ context.Context, envs [][]byte) []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]bool, len(envs))
	for i, e := range envs {
		b.envs = append(b.envs, append([]byte(nil), e...))
		out[i] = true
	}
	return out
}

func (b *inbox) count(env []byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.envs {
		if bytes.Equal(e, env) {
			n++
		}
	}
	return n
}

// testMesh starts a mesh on a memNet node, closed at the end of the test.
func testMesh(t *testing.T, net *memNet, id string, cfg Config) *Mesh {
	t.Helper()
	cfg.Transport = net.node(id)
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = time.Hour // only on meeting and on news
	}
	if cfg.MinSyncInterval == 0 {
		cfg.MinSyncInterval = time.Millisecond
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := mailbox.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomEnvelope(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// eventually waits (up to 10 s) for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCarrierAcrossLANs: alice and bob are never in range of each other; a
// carrier meets alice, then bob, then alice again. Bob gets the envelope
// exactly once, the carrier drops it on bob's receipt, and bob's answer
// reaches alice on the way back.
func TestCarrierAcrossLANs(t *testing.T) {
	net := newMemNet(t)
	alice := testMesh(t, net, "alice", Config{})
	carrier := testMesh(t, net, "carrier", Config{})
	bob := testMesh(t, net, "bob", Config{})
	ka, kb := newKey(t), newKey(t)
	var aliceIn, bobIn inbox
	alice.Own(ka, aliceIn.deliver)
	bob.Own(kb, bobIn.deliver)

	msg := randomEnvelope(t, 1024)
	if err := alice.Offer(mailbox.KeyID(kb), msg, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.Offer(mailbox.KeyID(kb), msg, nil); err != nil {
		t.Fatalf("offer again: %v", err)
	}
	if s := alice.Stats(); s.Own != 1 || s.Carried != 0 {
		t.Fatalf("alice stats %+v, want 1 own envelope", s)
	}
	net.link("alice", "carrier")
	eventually(t, "the carrier to take the envelope", func() bool { return carrier.Stats().Carried == 1 })
	net.unlink("alice", "carrier")

	net.link("carrier", "bob")
	eventually(t, "bob to get the envelope", func() bool { return bobIn.count(msg) == 1 })
	eventually(t, "the carrier to drop it on bob's receipt", func() bool { return carrier.Stats().Carried == 0 })
	if s := bob.Stats(); s.Delivered != 1 || s.Carried != 0 {
		t.Fatalf("bob stats %+v: want 1 delivered, nothing carried", s)
	}

	ack := randomEnvelope(t, 512)
	if err := bob.Offer(mailbox.KeyID(ka), ack, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the carrier to take bob's answer", func() bool { return carrier.Stats().Carried == 1 })
	net.unlink("carrier", "bob")
	net.link("carrier", "alice")
	eventually(t, "alice to get the answer", func() bool { return aliceIn.count(ack) == 1 })
	// The receipt for alice's envelope came back with the carrier: alice
	// stops carrying her own message.
	eventually(t, "alice to drop her delivered envelope", func() bool { return alice.Stats().Own == 0 })
	if n := bobIn.count(msg); n != 1 {
		t.Fatalf("bob got the envelope %d times", n)
	}
	// Meeting again moves nothing new.
	net.unlink("carrier", "alice")
	net.link("carrier", "bob")
	before, syncs := bob.Stats().Delivered, bob.Stats().Syncs
	eventually(t, "a sync", func() bool { return bob.Stats().Syncs > syncs })
	if bob.Stats().Delivered != before || bobIn.count(msg) != 1 {
		t.Fatal("envelope delivered again")
	}
}

// TestHopLimit: with Hops 1 an envelope goes to exactly one carrier (it
// travels 1 + a geometric number of hops, Hops on average: sendHops), which
// keeps it for its owner; the owner takes it from there.
func TestHopLimit(t *testing.T) {
	net := newMemNet(t)
	const n = 5
	ms := make([]*Mesh, n)
	for i := range ms {
		ms[i] = testMesh(t, net, fmt.Sprint("n", i), Config{Hops: 1})
	}
	kb := newKey(t)
	env := randomEnvelope(t, 100)
	if err := ms[0].Offer(mailbox.KeyID(kb), env, nil); err != nil {
		t.Fatal(err)
	}
	net.link("n0", "n1")
	eventually(t, "one hop", func() bool { return ms[1].Stats().Carried == 1 })
	// The rest of the chain: every link syncs on meeting, after n1 holds
	// the envelope.
	for i := 1; i+1 < n; i++ {
		net.link(fmt.Sprint("n", i), fmt.Sprint("n", i+1))
	}
	eventually(t, "syncs along the chain", func() bool {
		return ms[2].Stats().Syncs >= 2 && ms[3].Stats().Syncs >= 2 && ms[4].Stats().Syncs >= 1
	})
	for i := 2; i < n; i++ {
		if s := ms[i].Stats(); s.Carried != 0 {
			t.Fatalf("envelope went beyond 1 hop, to n%d: %+v", i, s)
		}
	}
	owner := testMesh(t, net, "owner", Config{})
	var in inbox
	owner.Own(kb, in.deliver)
	net.link("owner", "n1")
	eventually(t, "the owner to take it from the carrier", func() bool { return in.count(env) == 1 })
}

// TestReconcileSendsOnlyTheDifference: two carriers sharing 1,000 envelopes
// but one each exchange those two only, and a few kilobytes of summary.
func TestReconcileSendsOnlyTheDifference(t *testing.T) {
	net := newMemNet(t)
	a := testMesh(t, net, "a", Config{})
	b := testMesh(t, net, "b", Config{})
	id := mailbox.KeyID(newKey(t))
	shared := 1000
	for i := 0; i < shared; i++ {
		env := randomEnvelope(t, 200)
		for _, m := range []*Mesh{a, b} {
			if err := m.Offer(id, env, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Offer(id, randomEnvelope(t, 200), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Offer(id, randomEnvelope(t, 200), nil); err != nil {
		t.Fatal(err)
	}
	net.link("a", "b")
	eventually(t, "both to hold both", func() bool {
		return a.Stats().Carried == 1 && b.Stats().Carried == 1 && a.Stats().Syncs >= 2
	})
	sa, sb := a.Stats(), b.Stats()
	if sa.ItemsSent+sb.ItemsSent != 2 {
		t.Fatalf("items sent %d + %d, want 2", sa.ItemsSent, sb.ItemsSent)
	}
	perSync := (sa.BytesSent + sb.BytesSent) / (sa.Syncs + sb.Syncs) * 2
	t.Logf("shared %d, differ 2: %d bytes per sync (both ways), %d syncs", shared, perSync, sa.Syncs+sb.Syncs)
	if perSync > 16<<10 {
		t.Fatalf("%d bytes per sync to reconcile 2 differences", perSync)
	}
}

// TestStorageBounds: a carrier never holds more than MaxItems envelopes or
// MaxBytes bytes, however much is offered to it.
func TestStorageBounds(t *testing.T) {
	net := newMemNet(t)
	src := testMesh(t, net, "src", Config{})
	carrier := testMesh(t, net, "carrier", Config{MaxItems: 10, MaxBytes: 10 * 1000})
	id := mailbox.KeyID(newKey(t))
	for i := 0; i < 50; i++ {
		if err := src.Offer(id, randomEnvelope(t, 600+i), nil); err != nil {
			t.Fatal(err)
		}
	}
	net.link("src", "carrier")
	eventually(t, "a sync", func() bool { return carrier.Stats().Syncs >= 2 })
	s := carrier.Stats()
	if s.Carried == 0 || s.Carried > 10 || s.CarriedBytes > 10*1000 {
		t.Fatalf("carrier holds %d envelopes, %d bytes: bounds 10, 10000", s.Carried, s.CarriedBytes)
	}
	// Dropped ids are remembered: meeting again moves nothing more.
	sent, syncs := src.Stats().ItemsSent, carrier.Stats().Syncs
	net.unlink("src", "carrier")
	net.link("src", "carrier")
	eventually(t, "another sync", func() bool { return carrier.Stats().Syncs > syncs })
	if got := src.Stats().ItemsSent; got != sent {
		t.Fatalf("items sent again after a meeting: %d → %d", sent, got)
	}
}

func TestOwnerProof(t *testing.T) {
	k := newKey(t)
	now := time.Unix(1_800_000_000, 0)
	pub, sig := signOwner(k, "responder", "initiator", now.Unix())
	if id, ok := verifyOwner("responder", "initiator", pub, now.Unix(), sig, now); !ok || id != mailbox.KeyID(k) {
		t.Fatal("valid proof refused")
	}
	for name, f := range map[string]func() bool{
		"other responder": func() bool { _, ok := verifyOwner("other", "initiator", pub, now.Unix(), sig, now); return ok },
		"other initiator": func() bool { _, ok := verifyOwner("responder", "other", pub, now.Unix(), sig, now); return ok },
		"stale": func() bool {
			_, ok := verifyOwner("responder", "initiator", pub, now.Unix(), sig, now.Add(time.Hour))
			return ok
		},
		"other time": func() bool { _, ok := verifyOwner("responder", "initiator", pub, now.Unix()+1, sig, now); return ok },
	} {
		if f() {
			t.Errorf("%s: accepted", name)
		}
	}
	h := mailbox.HashEnvelope([]byte("x"))
	id := mailbox.KeyID(k)
	rsig := ed25519.Sign(k, receiptMessage(id, h))
	if !verifyReceipt(id, h, k.Public().(ed25519.PublicKey), rsig) {
		t.Fatal("valid receipt refused")
	}
	other := newKey(t)
	if verifyReceipt(mailbox.KeyID(other), h, k.Public().(ed25519.PublicKey), rsig) {
		t.Fatal("receipt accepted for another mailbox")
	}
}

// TestNeighbourShare: a neighbour pushing a flood of envelopes fills only
// its share of a carrier's storage; another neighbour's mail still fits.
func TestNeighbourShare(t *testing.T) {
	net := newMemNet(t)
	spammer := testMesh(t, net, "a-spammer", Config{})
	friend := testMesh(t, net, "b-friend", Config{})
	carrier := testMesh(t, net, "c-carrier", Config{MaxItems: 8})
	id := mailbox.KeyID(newKey(t))
	for i := 0; i < 40; i++ {
		if err := spammer.Offer(id, randomEnvelope(t, 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	net.link("a-spammer", "c-carrier")
	eventually(t, "the carrier to take the spammer's share", func() bool { return carrier.Stats().Carried == 8/PeerShareDivisor })
	letter := randomEnvelope(t, 100)
	if err := friend.Offer(id, letter, nil); err != nil {
		t.Fatal(err)
	}
	net.link("b-friend", "c-carrier")
	eventually(t, "the carrier to take the friend's letter", func() bool { return carrier.Stats().Carried == 8/PeerShareDivisor+1 })
	if carrier.st.get(mailbox.HashEnvelope(letter)) == nil {
		t.Fatal("the friend's letter is not carried")
	}
}

// TestMeetingBeforeStart: a neighbour connected before the mesh started (a
// bootstrap peer dialled while the node was still starting) is synced with
// at Start, not at the next round an hour later. The CLI carrier test
// caught it twice: the carrier connected to alice before its mesh served
// the protocol, so when the carrier had the smaller id (the side that
// starts the sync on meeting) nobody synced, and when alice had it, her
// sync found no mesh there and she waited for her next round.
func TestMeetingBeforeStart(t *testing.T) {
	for _, tc := range []struct{ alice, carrier string }{
		{"z-alice", "a-carrier"}, // the carrier would start the sync
		{"a-alice", "z-carrier"}, // alice would, and tries too early
	} {
		t.Run(tc.carrier, func(t *testing.T) {
			net := newMemNet(t)
			alice := testMesh(t, net, tc.alice, Config{})
			carrier, err := New(Config{Transport: net.node(tc.carrier), SyncInterval: time.Hour, MinSyncInterval: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := carrier.Close(); err != nil {
					t.Error(err)
				}
			})
			net.link(tc.alice, tc.carrier) // before the carrier's mesh starts
			kb := newKey(t)
			if err := alice.Offer(mailbox.KeyID(kb), randomEnvelope(t, 100), nil); err != nil {
				t.Fatal(err)
			}
			// Alice's round (or meeting) finds no mesh at the carrier yet.
			eventually(t, "alice to find no mesh at the carrier", func() bool {
				alice.mu.Lock()
				defer alice.mu.Unlock()
				_, ok := alice.notMesh[tc.carrier]
				return ok
			})
			carrier.Start()
			eventually(t, "the carrier to hold alice's envelope", func() bool { return carrier.Stats().Carried == 1 })
		})
	}
}
