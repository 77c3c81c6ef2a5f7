package messenger

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// forwardedCard is n's card as someone who never got n's invite holds it
// (forwarded to them, or read from the DHT): a link with no secret.
func forwardedCard(t testing.TB, n *tnode) string {
	t.Helper()
	link, err := n.m.Invite(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inv, err := identity.ParseInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := identity.EncodeInvite(inv.SignedCard, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fwd
}

// strangerAdds makes to a contact of from, from to's forwarded card.
func strangerAdds(t testing.TB, from, to *tnode) {
	t.Helper()
	if _, err := from.m.AddContact(context.Background(), forwardedCard(t, to), to.name); err != nil {
		t.Fatal(err)
	}
}

func requestsOf(t testing.TB, n *tnode) []RequestInfo {
	t.Helper()
	rs, err := n.m.Requests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// noContactOrChat checks that n shows acct nowhere but in its requests.
func noContactOrChat(t testing.TB, n *tnode, acct, text string) {
	t.Helper()
	ctx := context.Background()
	cs, err := n.m.Contacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.AccountID == acct {
			t.Fatalf("%s made the stranger a contact: %+v", n.name, c)
		}
	}
	chats, err := n.m.Chats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chats {
		if c.Contact.AccountID == acct {
			t.Fatalf("%s shows the stranger's chat: %+v", n.name, c)
		}
	}
	if _, err := n.m.Contact(ctx, acct); !errors.Is(err, ErrUnknownContact) {
		t.Fatalf("the stranger resolves as a contact: %v", err)
	}
	found, err := n.m.Search(ctx, text, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 0 {
		t.Fatalf("search finds the stranger's message: %+v", found)
	}
}

// TestStrangerLandsInRequests is the attack of issue 14: mallory holds
// bob's card (not his invite) and writes to him directly, eve through his
// mailbox while he is offline. Neither becomes a contact: both are
// requests holding their messages, shown in no chat, found by no search.
// On the code before requests, both became contacts.
func TestStrangerLandsInRequests(t *testing.T) {
	ctx := context.Background()
	host, _, _ := startMailboxHost(t)
	bob, mallory, eve := newNode(t, "bob"), newNode(t, "mallory"), newNode(t, "eve")
	bob.pinAddr()
	bob.restartWith(withMailbox(host))
	events, stop := bob.m.Subscribe()
	defer stop()

	strangerAdds(t, mallory, bob)
	m := send(t, mallory, "bob", "buy cheap watches")
	waitState(t, mallory, "bob", m.ID, StateDelivered) // acked on the stream
	eventually(t, 10*time.Second, "a request event", func() bool {
		for {
			select {
			case e := <-events:
				if e.Type == EventRequest && e.State == RequestNew {
					return true
				}
			default:
				return false
			}
		}
	})
	noContactOrChat(t, bob, mallory.m.AccountID(), "watches")
	rs := requestsOf(t, bob)
	if len(rs) != 1 || rs[0].AccountID != mallory.m.AccountID() || rs[0].Name != "mallory" ||
		len(rs[0].Messages) != 1 || rs[0].Messages[0].Body != "buy cheap watches" || rs[0].SafetyNumber == "" {
		t.Fatalf("bob's requests: %+v", rs)
	}

	// Through the mailbox: eve's message waits for bob there.
	strangerAdds(t, eve, bob)
	bob.stop()
	e := send(t, eve, "bob", "hello from the mailbox")
	waitState(t, eve, "bob", e.ID, StateSent)
	bob.start()
	eventually(t, 20*time.Second, "eve's request", func() bool { return len(requestsOf(t, bob)) == 2 })
	noContactOrChat(t, bob, eve.m.AccountID(), "mailbox")
	rs = requestsOf(t, bob)
	if rs[1].AccountID != eve.m.AccountID() || len(rs[1].Messages) != 1 || rs[1].Messages[0].Body != "hello from the mailbox" {
		t.Fatalf("eve's request: %+v", rs[1])
	}
	// No traffic to a stranger: her message is not acked from the mailbox.
	if st := stateOf(t, eve, "bob", e.ID); st != StateSent {
		t.Fatalf("eve's message is %s before bob accepted her", st)
	}

	// Accepting makes a contact, shows the message in its chat and acks it.
	c, err := bob.m.AcceptRequest(ctx, fmt.Sprint(rs[1].ID), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "eve" || c.AccountID != eve.m.AccountID() {
		t.Fatalf("accepted: %+v", c)
	}
	if got := messages(t, bob, "eve"); len(got) != 1 || got[0].Body != "hello from the mailbox" {
		t.Fatalf("eve's chat: %+v", got)
	}
	waitState(t, eve, "bob", e.ID, StateDelivered)
	r := send(t, bob, "eve", "welcome")
	waitState(t, bob, "eve", r.ID, StateDelivered)
	if found, _ := bob.m.Search(ctx, "mailbox", 10); len(found) != 1 {
		t.Fatalf("search after accepting: %+v", found)
	}
	if rs := requestsOf(t, bob); len(rs) != 1 || rs[0].AccountID != mallory.m.AccountID() {
		t.Fatalf("requests after accepting eve: %+v", rs)
	}

	// Declining deletes mallory's request and refuses her from then on.
	if _, err := bob.m.DeclineRequest(ctx, mallory.m.AccountID()); err != nil {
		t.Fatal(err)
	}
	if rs := requestsOf(t, bob); len(rs) != 0 {
		t.Fatalf("requests after declining: %+v", rs)
	}
	if _, err := bob.m.DeclineRequest(ctx, mallory.m.AccountID()); !errors.Is(err, ErrUnknownRequest) {
		t.Fatalf("declining twice: %v", err)
	}
	m2 := send(t, mallory, "bob", "why no answer")
	eventually(t, 20*time.Second, "mallory refused", func() bool { return stateOf(t, mallory, "bob", m2.ID) == StateFailed })
	if rs := requestsOf(t, bob); len(rs) != 0 {
		t.Fatalf("a declined stranger is back: %+v", rs)
	}
	noContactOrChat(t, bob, mallory.m.AccountID(), "answer")
}

// TestDeclinedStrangerBlocked: after a decline, a new session from that
// account is refused before any PQXDH work, for DeclineBlock; then it is a
// request again.
func TestDeclinedStrangerBlocked(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Now()}
	bob := newNodeTuned(t, "bob", func(c *Config) { c.Now = clock.now })
	mallory := newNode(t, "mallory")
	strangerAdds(t, mallory, bob)
	m := send(t, mallory, "bob", "first")
	waitState(t, mallory, "bob", m.ID, StateDelivered)
	if _, err := bob.m.DeclineRequest(ctx, fmt.Sprint(requestsOf(t, bob)[0].ID)); err != nil {
		t.Fatal(err)
	}
	// A fresh initiation of mallory's (as after she reset her session).
	link, _ := bob.m.Invite(ctx)
	inv, _ := identity.ParseInvite(link)
	fresh := func() []byte {
		in, _, err := handshake.Initiate(crand.Reader, mallory.m.id, inv.Card.Bundle, ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		id := make([]byte, wire.MessageIDSize)
		crand.Read(id)
		return wire.Marshal(&wirepb.Envelope{Version: wire.Version, MessageId: id, Initiation: in.Marshal(), Ciphertext: bytes.Repeat([]byte{7}, 200)})
	}
	rs, _ := exchange(t, mallory, bob, fresh())
	if len(rs) != 1 || rs[0].Status != wirepb.Response_STATUS_REJECTED || rs[0].Error != "unknown sender" {
		t.Fatalf("a declined account's initiation: %+v", rs)
	}
	clock.add(DeclineBlock + time.Hour)
	rs, _ = exchange(t, mallory, bob, fresh())
	// No longer blocked: tried (and this forged one fails to decrypt).
	if len(rs) != 1 || rs[0].Error != "cannot decrypt or parse" {
		t.Fatalf("after the block ran out: %+v", rs)
	}
}

// TestInviteHolderIsContact: whoever adds bob from an invite he issued
// (long or short) proves its secret and becomes his contact at once; the
// proof is bound to the account that holds the invite.
func TestInviteHolderIsContact(t *testing.T) {
	ctx := context.Background()
	bob, alice, carol := newNode(t, "bob"), newNode(t, "alice"), newNode(t, "carol")
	l1, err := bob.m.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l2, _ := bob.m.Invite(ctx); l2 != l1 {
		t.Fatal("the long link changed with the same card")
	}
	if inv, _ := identity.ParseInvite(l1); len(inv.Secret) != identity.ShortSecretSize {
		t.Fatalf("the long link carries a secret of %d bytes", len(inv.Secret))
	}
	addContact(t, alice, bob) // the long invite
	short, err := bob.m.ShortInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.m.AddContact(ctx, short, "bob"); err != nil {
		t.Fatal(err)
	}
	a := send(t, alice, "bob", "from the long invite")
	c := send(t, carol, "bob", "from the short invite")
	waitState(t, alice, "bob", a.ID, StateDelivered)
	waitState(t, carol, "bob", c.ID, StateDelivered)
	if rs := requestsOf(t, bob); len(rs) != 0 {
		t.Fatalf("invite holders filed as requests: %+v", rs)
	}
	if got := messages(t, bob, "alice"); len(got) != 1 {
		t.Fatalf("bob's chat with alice: %+v", got)
	}
	if got := messages(t, bob, "carol"); len(got) != 1 {
		t.Fatalf("bob's chat with carol: %+v", got)
	}
	// The proof alice holds says nothing for another account.
	var proof []byte
	err = alice.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, "bob")
		if err != nil {
			return err
		}
		proof, err = tx.Blob(blobInviteProof(c.ID))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = bob.st.View(ctx, func(tx *store.Tx) error {
		for acct, want := range map[string]bool{alice.m.AccountID(): true, carol.m.AccountID(): false} {
			if ok, err := bob.m.inviteProofValid(tx, acct, proof); err != nil || ok != want {
				return fmt.Errorf("proof of alice's invite for %s: %v %v", identity.Short(acct), ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStrangerFloodOwnBucket: strangers' new sessions from a mailbox (no
// device to tell them apart) spend their own bucket, not the contacts':
// after a flood that bucket refuses, a contact's first message from the
// same mailbox is taken at once. Counted, not timed. On the code before
// requests, every mailbox initiation shared one bucket and the contact's
// was told to retry.
func TestStrangerFloodOwnBucket(t *testing.T) {
	ctx := context.Background()
	alice, bob, eve := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "eve")
	addContact(t, alice, bob)
	addContact(t, bob, alice) // alice is bob's contact; no session yet
	aliceEnv := heldEnvelope(t, alice, bob, "a contact's first message")
	link, _ := bob.m.Invite(ctx)
	inv, _ := identity.ParseInvite(link)
	const flood = 3 * initBurst
	var envs []*wirepb.Envelope
	var hints [][]byte
	for i := 0; i < flood; i++ {
		in, _, err := handshake.Initiate(crand.Reader, eve.m.id, inv.Card.Bundle, ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		id := make([]byte, wire.MessageIDSize)
		crand.Read(id)
		envs = append(envs, &wirepb.Envelope{Version: wire.Version, MessageId: id, Initiation: in.Marshal(), Ciphertext: bytes.Repeat([]byte{7}, 200)})
		hints = append(hints, sealedHint(eve.m.id.Public().SigningKey()))
	}
	rs, _ := bob.m.receiveSealed(ctx, "", envs, hints)
	retry := 0
	for _, r := range rs {
		if r.Status == wirepb.Response_STATUS_RETRY {
			retry++
		}
	}
	if retry != flood-initBurst {
		t.Fatalf("stranger flood: %d of %d told to retry, want %d", retry, flood, flood-initBurst)
	}
	env, err := wire.ParseEnvelope(aliceEnv)
	if err != nil {
		t.Fatal(err)
	}
	rs, err = bob.m.receiveSealed(ctx, "", []*wirepb.Envelope{env}, [][]byte{sealedHint(alice.m.id.Public().SigningKey())})
	if err != nil || rs[0].Status != wirepb.Response_STATUS_OK {
		t.Fatalf("the contact's first message after the flood: %+v, %v", rs[0], err)
	}
	if got := messages(t, bob, "alice"); len(got) != 1 || got[0].Body != "a contact's first message" {
		t.Fatalf("bob has %+v from alice", got)
	}
	// And the strangers' bucket is still spent.
	rs, _ = bob.m.receiveSealed(ctx, "", envs[:1], hints[:1])
	if rs[0].Status != wirepb.Response_STATUS_RETRY {
		t.Fatalf("a stranger after the flood: %+v", rs[0])
	}
}

// fakeRequests files n requests of msgs messages of body bytes each
// straight in the store, oldest first, as if n strangers had written.
func fakeRequests(t testing.TB, tn *tnode, n, msgs, body int) []int64 {
	t.Helper()
	var ids []int64
	err := tn.st.Update(context.Background(), func(tx *store.Tx) error {
		at := time.Now().Add(-time.Hour)
		for i := 0; i < n; i++ {
			acct := fmt.Sprintf("fake%04d", i)
			c := &store.Contact{AccountID: acct, Name: requestName(acct), Card: []byte("card"), Created: at, Request: at.Add(time.Duration(i) * time.Millisecond)}
			if err := tx.AddContact(c); err != nil {
				return err
			}
			ids = append(ids, c.ID)
			for j := 0; j < msgs; j++ {
				msg := &store.Message{ID: fmt.Sprintf("%016x%016x", i, j), ContactID: c.ID, Body: strings.Repeat("x", body), SentAt: at, At: at, State: StateReceived}
				if _, err := tx.InsertMessage(msg); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func requestBytes(t testing.TB, tn *tnode) (int, int64) {
	t.Helper()
	var sizes []store.RequestSize
	err := tn.st.View(context.Background(), func(tx *store.Tx) (err error) {
		sizes, err = tx.RequestSizes(blobRequestAttachments)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, s := range sizes {
		total += s.Bytes
	}
	return len(sizes), total
}

// TestRequestBounds: the list holds at most MaxRequests requests and
// MaxRequestBytes bytes; a new request beyond either bound drops the
// oldest first. One request holds at most MaxRequestMessages messages:
// the next one stays with its sender and arrives once accepted.
func TestRequestBounds(t *testing.T) {
	ctx := context.Background()
	t.Run("count", func(t *testing.T) {
		bob, mallory := newNode(t, "bob"), newNode(t, "mallory")
		ids := fakeRequests(t, bob, MaxRequests, 0, 0)
		strangerAdds(t, mallory, bob)
		m := send(t, mallory, "bob", "one more")
		waitState(t, mallory, "bob", m.ID, StateDelivered)
		rs := requestsOf(t, bob)
		if len(rs) != MaxRequests || rs[0].ID != ids[1] || rs[len(rs)-1].AccountID != mallory.m.AccountID() {
			t.Fatalf("%d requests, first %d (oldest was %d), last %s", len(rs), rs[0].ID, ids[0], identity.Short(rs[len(rs)-1].AccountID))
		}
	})
	t.Run("bytes", func(t *testing.T) {
		bob, mallory := newNode(t, "bob"), newNode(t, "mallory")
		per := 4 * wire.MaxTextSize // four of the longest texts
		n := MaxRequestBytes / per  // just under the budget
		ids := fakeRequests(t, bob, n, 4, wire.MaxTextSize-64)
		if _, total := requestBytes(t, bob); total > MaxRequestBytes {
			t.Fatalf("setup: %d bytes", total)
		}
		strangerAdds(t, mallory, bob)
		m := send(t, mallory, "bob", strings.Repeat("y", 8<<10))
		waitState(t, mallory, "bob", m.ID, StateDelivered)
		count, total := requestBytes(t, bob)
		rs := requestsOf(t, bob)
		if total > MaxRequestBytes || count != n || rs[0].ID != ids[1] || rs[len(rs)-1].AccountID != mallory.m.AccountID() {
			t.Fatalf("%d requests of %d bytes (budget %d); first %d, oldest was %d", count, total, MaxRequestBytes, rs[0].ID, ids[0])
		}
	})
	t.Run("per request", func(t *testing.T) {
		bob, mallory := newNode(t, "bob"), newNode(t, "mallory")
		strangerAdds(t, mallory, bob)
		var last store.Message
		for i := 0; i <= MaxRequestMessages; i++ {
			last = send(t, mallory, "bob", fmt.Sprintf("message %d", i))
		}
		eventually(t, 20*time.Second, "the request full", func() bool {
			rs := requestsOf(t, bob)
			return len(rs) == 1 && len(rs[0].Messages) == MaxRequestMessages
		})
		// Only the last is still queued at mallory's, told to retry.
		eventually(t, 20*time.Second, "the last message tried twice", func() bool {
			var items []store.OutboxItem
			err := mallory.st.View(ctx, func(tx *store.Tx) (err error) { items, err = tx.Outbox(last.ContactID); return err })
			if err != nil {
				t.Fatal(err)
			}
			return len(items) == 1 && items[0].MessageID == last.ID && items[0].Attempts >= 2
		})
		rs := requestsOf(t, bob)
		if len(rs) != 1 || len(rs[0].Messages) != MaxRequestMessages {
			t.Fatalf("request holds %d messages, want %d", len(rs[0].Messages), MaxRequestMessages)
		}
		if st := stateOf(t, mallory, "bob", last.ID); st == StateDelivered || st == StateFailed {
			t.Fatalf("the message over the bound is %s", st)
		}
		if _, err := bob.m.AcceptRequest(ctx, fmt.Sprint(rs[0].ID), "m"); err != nil {
			t.Fatal(err)
		}
		waitState(t, mallory, "bob", last.ID, StateDelivered)
		if got := messages(t, bob, "m"); len(got) != MaxRequestMessages+1 {
			t.Fatalf("after accepting: %d messages, want %d", len(got), MaxRequestMessages+1)
		}
	})
}

// TestRequestFileWaitsForAccept: a stranger's file is not fetched while
// its request waits (no traffic to a stranger's device); its manifest is
// kept, and once accepted the file arrives whole.
func TestRequestFileWaitsForAccept(t *testing.T) {
	ctx := context.Background()
	alice, _ := mediaNode(t, "alice")
	bob, _ := mediaNode(t, "bob")
	strangerAdds(t, alice, bob)
	path, data := writeRandom(t, 300<<10)
	msg, err := alice.m.SendFile(ctx, "bob", path, "a file from a stranger")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, alice, "bob", msg.ID, StateDelivered)
	rs := requestsOf(t, bob)
	if len(rs) != 1 || len(rs[0].Messages) != 1 || rs[0].Messages[0].Body != "a file from a stranger" {
		t.Fatalf("bob's requests: %+v", rs)
	}
	if tr := transferOf(t, bob, msg.ID); tr.MessageID != "" {
		t.Fatalf("bob fetches a stranger's file: %+v", tr)
	}
	if _, err := bob.m.AcceptRequest(ctx, fmt.Sprint(rs[0].ID), ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bob has the file once he accepted", func() bool {
		return transferOf(t, bob, msg.ID).State == media.StateComplete
	})
	out := filepath.Join(t.TempDir(), "saved")
	if err := bob.m.SaveFile(ctx, msg.ID, out); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the saved file differs (%v)", err)
	}
	if rs := requestsOf(t, bob); len(rs) != 0 {
		t.Fatalf("requests after accepting: %+v", rs)
	}
}

// TestStrangerGroupInvitationWaits: a stranger's group invitation makes a
// request (no message), not a group; it is told to retry, and arrives once
// the request is accepted.
func TestStrangerGroupInvitationWaits(t *testing.T) {
	ctx := context.Background()
	bob, mallory := newNode(t, "bob"), newNode(t, "mallory")
	strangerAdds(t, mallory, bob)
	g, err := mallory.m.CreateGroup(ctx, "Free money")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "mallory's request", func() bool { return len(requestsOf(t, bob)) == 1 })
	waitAttempts(t, mallory, "bob", 2) // told to retry, more than once
	if gs, err := bob.m.Groups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("bob is in groups %+v (%v) before accepting", gs, err)
	}
	noContactOrChat(t, bob, mallory.m.AccountID(), "money")
	if _, err := bob.m.AcceptRequest(ctx, mallory.m.AccountID(), ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the invitation once accepted", func() bool {
		gi, err := bob.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2
	})
}
