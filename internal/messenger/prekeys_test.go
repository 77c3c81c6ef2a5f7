package messenger

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// queuedEnvelope returns the first envelope queued for contact ref of n.
func queuedEnvelope(t *testing.T, n *tnode, ref string) (*wirepb.Envelope, *handshake.Initiation) {
	t.Helper()
	var items []store.OutboxItem
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		items, err = tx.Outbox(c.ID)
		return err
	})
	if err != nil || len(items) == 0 {
		t.Fatalf("%s's outbox for %s: %d items, %v", n.name, ref, len(items), err)
	}
	env, err := wire.ParseEnvelope(items[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	in, err := handshake.ParseInitiation(env.Initiation)
	if err != nil {
		t.Fatalf("first envelope carries no initiation: %v", err)
	}
	return env, in
}

// respondStored answers in with the prekeys n has stored, as n would.
func respondStored(t *testing.T, n *tnode, in *handshake.Initiation) error {
	t.Helper()
	var pk *handshake.Prekeys
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		b, err := tx.Blob(blobPrekeys)
		if err != nil {
			return err
		}
		pk, err = handshake.UnmarshalPrekeys(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = handshake.Respond(n.m.id, pk, in, n.m.cfg.Ratchet)
	return err
}

// TestPrekeyClaimAndReplay: alice claims one of bob's one-time prekey
// pairs over /samizdat/prekey/1 when she adds him, her session with him
// uses it, and once bob has answered, a replay of her initiation is
// refused (ErrPrekeyUsed). Carol, who cannot reach bob to claim, falls back
// to his signed and last-resort prekeys; a replay of hers is refused by
// bob's replay cache (ErrReplayedInitiation).
func TestPrekeyClaimAndReplay(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	bob.pinAddr()
	before, err := bob.m.PrekeyStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := addContact(t, alice, bob)
	eventually(t, 20*time.Second, "alice's claim of bob's one-time prekeys", func() bool { return alice.m.hasClaim(c.ID) })
	after, err := bob.m.PrekeyStatus(ctx)
	if err != nil || after.Unclaimed != before.Unclaimed-1 || after.OneTime != before.OneTime {
		t.Fatalf("bob's prekeys after one claim: %+v (before %+v), %v", after, before, err)
	}
	link, err := bob.m.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}

	bob.stop()
	msg := send(t, alice, "bob", "hello with a one-time prekey")
	env, in := queuedEnvelope(t, alice, "bob")
	if !in.HasOneTimePrekey || !in.KEMOneTime {
		t.Fatalf("alice's initiation uses no claimed one-time prekeys (X25519 %v, ML-KEM %v)", in.HasOneTimePrekey, in.KEMOneTime)
	}
	// Carol adds bob while he is offline: her claim fails.
	if _, err := carol.m.AddContact(ctx, link, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "carol's claim attempt to end", func() bool {
		carol.m.pk.mu.Lock()
		defer carol.m.pk.mu.Unlock()
		return len(carol.m.pk.claiming) == 0
	})
	cmsg := send(t, carol, "bob", "hello without one")
	cenv, cin := queuedEnvelope(t, carol, "bob")
	if cin.HasOneTimePrekey || cin.KEMOneTime {
		t.Fatal("carol's initiation uses one-time prekeys she could not claim")
	}

	bob.start()
	waitState(t, alice, "bob", msg.ID, StateDelivered)
	waitState(t, carol, "bob", cmsg.ID, StateDelivered)
	got, err := bob.m.PrekeyStatus(ctx)
	if err != nil || got.OneTime != before.OneTime-1 {
		t.Fatalf("bob's one-time prekeys after alice's session: %+v, %v", got, err)
	}

	// The replays, against bob's persisted prekeys.
	if err := respondStored(t, bob, in); !errors.Is(err, handshake.ErrPrekeyUsed) {
		t.Fatalf("replay of alice's initiation: %v, want ErrPrekeyUsed", err)
	}
	if err := respondStored(t, bob, cin); !errors.Is(err, handshake.ErrReplayedInitiation) {
		t.Fatalf("replay of carol's initiation: %v, want ErrReplayedInitiation", err)
	}
	// And through bob's receive path, after his sessions with them are gone
	// (as when newer sessions push them out): the replayed envelopes, under
	// fresh message ids so that no receipt answers for them, are refused
	// and start no session.
	for _, tc := range []struct {
		from *tnode
		env  *wirepb.Envelope
	}{{alice, env}, {carol, cenv}} {
		var cid int64
		err := bob.st.Update(ctx, func(tx *store.Tx) error {
			sc, err := tx.ContactByAccount(tc.from.m.AccountID())
			if err != nil {
				return err
			}
			cid = sc.ID
			return tx.PutSession(cid, wire.Marshal(&wirepb.SessionRecord{Version: wire.Version}))
		})
		if err != nil {
			t.Fatal(err)
		}
		replay := &wirepb.Envelope{Version: tc.env.Version, MessageId: make([]byte, wire.MessageIDSize), Initiation: tc.env.Initiation, Ciphertext: tc.env.Ciphertext}
		rand.Read(replay.MessageId)
		resp, _ := bob.m.receive(ctx, tc.from.n.PeerID(), replay)
		if resp.Status != wirepb.Response_STATUS_REJECTED {
			t.Fatalf("replayed envelope from %s: status %v (%s)", tc.from.name, resp.Status, resp.Error)
		}
		var b []byte
		_ = bob.st.View(ctx, func(tx *store.Tx) (err error) { b, err = tx.Session(cid); return err })
		if rec, err := wire.ParseSessionRecord(b); err != nil || len(rec.Sessions) != 0 {
			t.Fatalf("replay from %s started a session: %v", tc.from.name, err)
		}
	}
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestPrekeyRotation: bob's signed prekey rotates after a week on his
// clock, his card is re-signed with it and reaches alice with his next
// message; the replaced one is deleted after the grace period.
func TestPrekeyRotation(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Now()}
	alice := newNode(t, "alice")
	bob := newNodeTuned(t, "bob", func(c *Config) { c.Now = clk.now })
	addContact(t, bob, alice)
	msg := send(t, bob, "alice", "hi")
	waitState(t, bob, "alice", msg.ID, StateDelivered)
	s0, err := bob.m.PrekeyStatus(ctx)
	if err != nil || s0.SignedCreated == 0 {
		t.Fatalf("status at start: %+v, %v", s0, err)
	}
	aliceCard := func() *identity.Card {
		var sc *store.Contact
		_ = alice.st.View(ctx, func(tx *store.Tx) (err error) { sc, err = tx.ContactByAccount(bob.m.AccountID()); return err })
		if sc == nil {
			return nil
		}
		card, err := identity.ParseSignedCard(sc.Card)
		if err != nil {
			t.Fatal(err)
		}
		return card
	}
	if card := aliceCard(); card == nil || card.Bundle.SignedPrekeyID != s0.SignedPrekeyID {
		t.Fatal("alice does not hold bob's card with his signed prekey")
	}

	clk.add(handshake.DefaultRotateEvery*time.Second - time.Minute)
	if err := bob.m.maintainPrekeys(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := bob.m.PrekeyStatus(ctx); s.SignedPrekeyID != s0.SignedPrekeyID {
		t.Fatal("rotated before a week")
	}
	clk.add(time.Minute)
	if err := bob.m.maintainPrekeys(ctx); err != nil {
		t.Fatal(err)
	}
	s1, _ := bob.m.PrekeyStatus(ctx)
	if s1.SignedPrekeyID == s0.SignedPrekeyID || s1.Generations != 2 {
		t.Fatalf("after a week: %+v", s1)
	}
	msg = send(t, bob, "alice", "after the rotation")
	waitState(t, bob, "alice", msg.ID, StateDelivered)
	eventually(t, 10*time.Second, "bob's new card at alice", func() bool {
		card := aliceCard()
		return card != nil && card.Bundle.SignedPrekeyID == s1.SignedPrekeyID
	})

	// A minute before the first one's grace ends the second is due too:
	// three generations answer...
	clk.add(handshake.DefaultGrace*time.Second - time.Minute)
	if err := bob.m.maintainPrekeys(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := bob.m.PrekeyStatus(ctx); s.Generations != 3 {
		t.Fatalf("a replaced signed prekey expired in its grace period: %+v", s)
	}
	// ...and a minute later the first one is gone.
	clk.add(time.Minute)
	if err := bob.m.maintainPrekeys(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := bob.m.PrekeyStatus(ctx); s.Generations != 2 {
		t.Fatalf("the first signed prekey outlived its grace period: %+v", s)
	}
}

// TestFirstMessageUsesClaim: a message sent right after adding a contact
// waits for the claim in flight and starts the session with a one-time
// prekey pair, which bob then deletes.
func TestFirstMessageUsesClaim(t *testing.T) {
	ctx := context.Background()
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	before, err := bob.m.PrekeyStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addContact(t, alice, bob)
	msg := send(t, alice, "bob", "first")
	waitState(t, alice, "bob", msg.ID, StateDelivered)
	after, err := bob.m.PrekeyStatus(ctx)
	if err != nil || after.OneTime != before.OneTime-1 || after.Unclaimed != before.Unclaimed-1 {
		t.Fatalf("bob's one-time prekeys: %+v, before %+v, %v", after, before, err)
	}
}

// TestPrekeyProtocolHandsOutOnce: a requester asking bob's device over
// and over gets a different pair each time, never one twice, until its
// rate limit answers with empty frames.
func TestPrekeyProtocolHandsOutOnce(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Now()} // stands still: no refill
	bob := newNodeTuned(t, "bob", func(c *Config) { c.Now = clk.now })
	eve := newNode(t, "eve")
	if err := eve.n.Connect(ctx, bob.n.PeerID(), bob.n.Addrs()); err != nil {
		t.Fatal(err)
	}
	claim := func() []byte {
		s, err := eve.n.OpenStream(ctx, bob.n.PeerID(), ProtocolPrekey)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := wire.WriteFrame(s, []byte{prekeyProtoVersion}); err != nil {
			t.Fatal(err)
		}
		b, err := wire.ReadFrame(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seen := map[uint32]bool{}
	got := 0
	for range initBurst + 4 {
		b := claim()
		if len(b) == 0 {
			continue
		}
		bundle, err := handshake.ParseBundle(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bundle.Identity.Equal(bob.m.id.Public()) || len(bundle.OneTimePrekeys) != 1 || len(bundle.KEMOneTimePrekeys) != 1 {
			t.Fatal("claim answered with another identity or not one pair")
		}
		id := bundle.OneTimePrekeys[0].ID
		if seen[id] {
			t.Fatalf("one-time prekey %d handed out twice", id)
		}
		seen[id] = true
		got++
	}
	if got != initBurst {
		t.Fatalf("%d of %d claims answered, want the burst of %d", got, initBurst+4, initBurst)
	}
	if s, err := bob.m.PrekeyStatus(ctx); err != nil || s.Unclaimed != DefaultOneTimePrekeys-got {
		t.Fatalf("bob's prekeys after %d claims: %+v, %v", got, s, err)
	}
}
