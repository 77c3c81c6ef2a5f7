package messenger

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

func TestSendBothWays(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, bob, alice) // bob has alice's invite; alice learns bob from his first message
	m1 := send(t, bob, "alice", "hello alice")
	waitState(t, bob, "alice", m1.ID, StateDelivered)

	got := messages(t, alice, "bob")
	if len(got) != 1 || got[0].Body != "hello alice" || got[0].Outgoing || got[0].State != StateReceived {
		t.Fatalf("alice has %+v", got)
	}
	m2 := send(t, alice, "bob", "hello bob")
	waitState(t, alice, "bob", m2.ID, StateDelivered)
	if got := messages(t, bob, "alice"); len(got) != 2 || got[1].Body != "hello bob" {
		t.Fatalf("bob has %+v", got)
	}
	// The contact alice learned is bob's real identity.
	ca, err := alice.m.Contact(context.Background(), "bob")
	if err != nil || ca.AccountID != bob.m.AccountID() {
		t.Fatalf("alice's contact bob = %+v, %v", ca, err)
	}
	cb, _ := bob.m.Contact(context.Background(), "alice")
	if ca.SafetyNumber == "" || ca.SafetyNumber != cb.SafetyNumber {
		t.Fatalf("safety numbers differ: %q vs %q", ca.SafetyNumber, cb.SafetyNumber)
	}
}

func TestOrderAndExactlyOnce(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	const n = 60
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, send(t, alice, "bob", fmt.Sprintf("msg %03d", i)).ID)
	}
	for _, id := range ids {
		waitState(t, alice, "bob", id, StateDelivered)
	}
	got := messages(t, bob, "alice")
	if len(got) != n {
		t.Fatalf("bob has %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if want := fmt.Sprintf("msg %03d", i); m.Body != want {
			t.Fatalf("message %d is %q, want %q (order broken)", i, m.Body, want)
		}
	}
}

func TestSimultaneousFirstMessages(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	var wg sync.WaitGroup
	var ma, mb store.Message
	wg.Add(2)
	go func() { defer wg.Done(); ma = send(t, alice, "bob", "from alice") }()
	go func() { defer wg.Done(); mb = send(t, bob, "alice", "from bob") }()
	wg.Wait()
	waitState(t, alice, "bob", ma.ID, StateDelivered)
	waitState(t, bob, "alice", mb.ID, StateDelivered)
	// Both sessions keep working afterwards, in both directions.
	for i := 0; i < 3; i++ {
		a := send(t, alice, "bob", fmt.Sprint("a", i))
		b := send(t, bob, "alice", fmt.Sprint("b", i))
		waitState(t, alice, "bob", a.ID, StateDelivered)
		waitState(t, bob, "alice", b.ID, StateDelivered)
	}
	if len(messages(t, alice, "bob")) != 8 || len(messages(t, bob, "alice")) != 8 {
		t.Fatal("messages lost or duplicated")
	}
}

func TestRecipientOfflineThenBack(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	warm := send(t, alice, "bob", "warm up")
	waitState(t, alice, "bob", warm.ID, StateDelivered)

	bob.stop()
	m := send(t, alice, "bob", "while you were away")
	waitAttempts(t, alice, "bob", 2) // several failed attempts
	if s := stateOf(t, alice, "bob", m.ID); s != StateQueued {
		t.Fatalf("state while bob is down = %q, want queued", s)
	}
	bob.start() // new port: alice learns it when bob connects
	waitState(t, alice, "bob", m.ID, StateDelivered)
	var n int
	for _, x := range messages(t, bob, "alice") {
		if x.Body == "while you were away" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("bob stored the message %d times, want exactly once", n)
	}
}

func TestSenderRestartKeepsOutbox(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	alice.pinAddr()
	bob.pinAddr()
	bob.stop()
	m := send(t, alice, "bob", "queued across a restart")
	alice.stop()
	alice.start()
	bob.start()
	waitState(t, alice, "bob", m.ID, StateDelivered)
}

// heldEnvelope has from encrypt a message to to while to is down, and
// returns its envelope; from's messenger is then stopped (its node stays
// up) so that the test can deliver the envelope by hand.
func heldEnvelope(t *testing.T, from, to *tnode, text string) []byte {
	t.Helper()
	from.pinAddr()
	to.pinAddr()
	to.stop()
	env := rawEnvelope(t, from, to.name, text)
	from.m.Close()
	to.start()
	return env
}

func rawEnvelope(t *testing.T, from *tnode, to string, text string) []byte {
	t.Helper()
	// Queue a message with the recipient unreachable, then take its
	// envelope from the outbox.
	m := send(t, from, to, text)
	var payload []byte
	err := from.st.View(context.Background(), func(tx *store.Tx) error {
		items, err := tx.Outbox(m.ContactID)
		for _, it := range items {
			if it.MessageID == m.ID {
				payload = it.Payload
			}
		}
		return err
	})
	if err != nil || payload == nil {
		t.Fatalf("no outbox item: %v", err)
	}
	return payload
}

func exchange(t *testing.T, from, to *tnode, frames ...[]byte) ([]*wirepb.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A dial that failed while to was down is in libp2p's dial backoff for
	// a while; to's own greeting connects the two meanwhile.
	var err error
	eventually(t, 15*time.Second, "a connection", func() bool {
		err = from.n.Connect(ctx, to.n.PeerID(), to.n.Addrs())
		return err == nil
	})
	s, err := from.n.OpenStream(ctx, to.n.PeerID(), ProtocolMsg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, f := range frames {
		if err := wire.WriteFrame(s, f); err != nil {
			return nil, err
		}
	}
	s.CloseWrite()
	var out []*wirepb.Response
	for range frames {
		b, err := wire.ReadFrame(s)
		if err != nil {
			return out, err
		}
		r, err := wire.ParseResponse(b)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func TestDuplicateEnvelopeStoredOnceAndAckedAgain(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	env := heldEnvelope(t, bob, alice, "say it twice")
	rs, err := exchange(t, bob, alice, env, env)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Status != wirepb.Response_STATUS_OK || len(r.Ack) == 0 {
			t.Fatalf("response %d: %v %q", i, r.Status, r.Error)
		}
	}
	// The duplicate gets the very same ack: duplicates never advance
	// alice's ratchet (else a flood of them would desynchronise it).
	if !bytes.Equal(rs[0].Ack, rs[1].Ack) {
		t.Fatal("duplicate answered with a fresh ack")
	}
	if got := messages(t, alice, "bob"); len(got) != 1 {
		t.Fatalf("alice stored %d messages, want 1", len(got))
	}
	// An envelope reusing the id with other contents is refused, and tells
	// nothing.
	e, _ := wire.ParseEnvelope(env)
	e.Ciphertext = append([]byte(nil), e.Ciphertext...)
	e.Ciphertext[0] ^= 1
	rs, err = exchange(t, bob, alice, wire.Marshal(e))
	if err != nil || rs[0].Status != wirepb.Response_STATUS_REJECTED || len(rs[0].Ack) != 0 {
		t.Fatalf("reused id: %v %v", rs, err)
	}
	// And the conversation still works both ways afterwards.
	bob.start2()
	m := send(t, alice, "bob", "still in sync?")
	waitState(t, alice, "bob", m.ID, StateDelivered)
	m = send(t, bob, "alice", "yes")
	waitState(t, bob, "alice", m.ID, StateDelivered)
}

func TestCardCannotClaimAnotherContactsDevice(t *testing.T) {
	alice, bob, mallory := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "mallory")
	addContact(t, bob, alice)
	// Mallory's card names alice's device: an invite carrying it is refused.
	ctx := context.Background()
	link, _ := mallory.m.Invite(ctx)
	inv, _ := identity.ParseInvite(link)
	forged := *inv.Card
	forged.Devices = []identity.Device{{PeerID: alice.n.PeerID(), Addrs: alice.n.Addrs()}}
	signed, err := identity.SignCard(mallory.m.id, &forged)
	if err != nil {
		t.Fatal(err)
	}
	forgedLink, _ := identity.EncodeInvite(signed, nil)
	if _, err := bob.m.AddContact(ctx, forgedLink, "m"); !errors.Is(err, identity.ErrBadInvite) {
		t.Fatalf("invite naming another contact's device: %v", err)
	}
	// Sent in a first message, the same card gets mallory rejected.
	addContact(t, mallory, bob)
	mallory.m.cardMu.Lock()
	mallory.m.ownCard, mallory.m.cardAddr, mallory.m.cardIssued = signed, mallory.n.PeerID()+"\n"+joinLines(transportAddrs(mallory.n.Addrs())), time.Now()
	mallory.m.cardMu.Unlock()
	m := send(t, mallory, "bob", "I am alice now")
	eventually(t, 20*time.Second, "mallory's message refused", func() bool { return stateOf(t, mallory, "bob", m.ID) == StateFailed })
	cs, _ := bob.m.Contacts(ctx)
	if len(cs) != 1 || cs[0].AccountID != alice.m.AccountID() {
		t.Fatalf("bob's contacts: %+v", cs)
	}
	// Alice is unaffected.
	addContact(t, alice, bob)
	m = send(t, alice, "bob", "hi bob")
	waitState(t, alice, "bob", m.ID, StateDelivered)
}

func TestOrderKeptAcrossRetries(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	alice.pinAddr()
	alice.restartWith(func(c *Config) { c.RetryMin, c.RetryMax = 300*time.Millisecond, 3*time.Second }) // longer than the poll
	bob.pinAddr()
	bob.stop()
	var ids []string
	for i := 0; i < 12; i++ {
		ids = append(ids, send(t, alice, "bob", fmt.Sprintf("m%02d", i)).ID)
		time.Sleep(150 * time.Millisecond) // spread over several failed attempts
	}
	bob.start()
	for _, id := range ids {
		waitState(t, alice, "bob", id, StateDelivered)
	}
	got := messages(t, bob, "alice")
	for i, m := range got {
		if want := fmt.Sprintf("m%02d", i); m.Body != want {
			var order []string
			for _, x := range got {
				order = append(order, x.Body)
			}
			t.Fatalf("bob received %v: out of order", order)
		}
	}
}

func TestGarbageResetsStreamNodeStaysUp(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	cases := map[string][]byte{
		"garbage":   []byte("this is not protobuf \xff\xff\xff"),
		"version":   wire.Marshal(&wirepb.Envelope{Version: 9, MessageId: make([]byte, 16), Ciphertext: []byte{1}}),
		"truncated": wire.Marshal(&wirepb.Envelope{Version: 1, MessageId: make([]byte, 16), Ciphertext: []byte{1}})[:5],
	}
	for name, frame := range cases {
		if _, err := exchange(t, bob, alice, frame); err == nil {
			t.Errorf("%s: stream was not reset", name)
		}
	}
	// An oversized frame header is refused before reading the body.
	ctx := context.Background()
	s, err := bob.n.OpenStream(ctx, alice.n.PeerID(), ProtocolMsg)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte{0x7f, 0xff, 0xff, 0xff})
	if _, err := wire.ReadFrame(s); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("oversized frame: stream not reset (%v)", err)
	}
	s.Close()
	// A forged envelope (valid framing, bad ciphertext) is rejected, not stored.
	forged := &wirepb.Envelope{Version: 1, MessageId: make([]byte, 16), Ciphertext: []byte("forged ciphertext forged ciphertext forged")}
	rs, err := exchange(t, bob, alice, wire.Marshal(forged))
	if err != nil || rs[0].Status != wirepb.Response_STATUS_REJECTED {
		t.Fatalf("forged envelope: %v %v", rs, err)
	}
	// The node still works.
	m := send(t, bob, "alice", "still there?")
	waitState(t, bob, "alice", m.ID, StateDelivered)
	if got := messages(t, alice, "bob"); len(got) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(got))
	}
}

func TestTamperedEnvelopeRejected(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	env := heldEnvelope(t, bob, alice, "do not touch")
	e, _ := wire.ParseEnvelope(env)
	e.Ciphertext[len(e.Ciphertext)/2] ^= 1
	rs, err := exchange(t, bob, alice, wire.Marshal(e))
	if err != nil || rs[0].Status != wirepb.Response_STATUS_REJECTED {
		t.Fatalf("tampered: %v %v", rs, err)
	}
	if got := messages(t, alice, "bob"); len(got) != 0 {
		t.Fatalf("tampered message stored: %+v", got)
	}
}

func TestUnknownSenderRejected(t *testing.T) {
	alice, bob, eve := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "eve")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	// eve has no session with alice and no initiation: she is nobody.
	env := &wirepb.Envelope{Version: 1, MessageId: make([]byte, 16), Ciphertext: []byte("hello")}
	rs, err := exchange(t, eve, alice, wire.Marshal(env))
	if err != nil || rs[0].Status != wirepb.Response_STATUS_REJECTED {
		t.Fatalf("unknown sender: %v %v", rs, err)
	}
}

func TestBadInput(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	ctx := context.Background()
	if _, err := alice.m.Send(ctx, "nobody", "hi"); !errors.Is(err, ErrUnknownContact) {
		t.Errorf("unknown contact: %v", err)
	}
	addContact(t, alice, bob)
	if _, err := alice.m.Send(ctx, "bob", "  "); !errors.Is(err, ErrEmptyMessage) {
		t.Errorf("empty: %v", err)
	}
	if _, err := alice.m.Send(ctx, "bob", strings.Repeat("x", wire.MaxTextSize+1)); !errors.Is(err, ErrMessageTooLong) {
		t.Errorf("too long: %v", err)
	}
	for _, link := range []string{"", "hello", "samizdat:", "samizdat:abc?card=xyz", "https://example.org"} {
		if _, err := alice.m.AddContact(ctx, link, ""); !errors.Is(err, identity.ErrBadInvite) {
			t.Errorf("AddContact(%q): %v", link, err)
		}
	}
	own, _ := alice.m.Invite(ctx)
	if _, err := alice.m.AddContact(ctx, own, ""); !errors.Is(err, ErrSelf) {
		t.Errorf("own invite: %v", err)
	}
	carol := newNode(t, "carol")
	link, _ := carol.m.Invite(ctx)
	if _, err := alice.m.AddContact(ctx, link, "bob"); !errors.Is(err, store.ErrExists) {
		t.Errorf("name taken: %v", err)
	}
	// Nothing above changed alice's contacts.
	cs, _ := alice.m.Contacts(ctx)
	if len(cs) != 1 || cs[0].Name != "bob" {
		t.Errorf("contacts after bad input: %+v", cs)
	}
	// By account id works too.
	if _, err := alice.m.Send(ctx, bob.m.AccountID(), "by id"); err != nil {
		t.Errorf("send by account id: %v", err)
	}
	_ = hex.EncodeToString
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                       "alice",
		"  bob\n the\tbuilder ":       "bob the builder",
		"evil\x1b[2J\x1b]0;pwned\x07": "evil[2J]0;pwned",
		"\u202eRTL override":          "RTL override",
		"bad \xff utf8":               "bad utf8",
		strings.Repeat("Ж", 100):      strings.Repeat("Ж", maxNameRunes),
	} {
		if got := CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGiveUpThenRetry(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	alice.pinAddr()
	alice.restartWith(func(c *Config) { c.GiveUpAfter = 500 * time.Millisecond })
	bob.pinAddr()
	bob.stop()
	m := send(t, alice, "bob", "will fail, then go")
	eventually(t, 20*time.Second, "the message failed", func() bool { return stateOf(t, alice, "bob", m.ID) == StateFailed })
	ctx := context.Background()
	if _, err := alice.m.Retry(ctx, "bob", "00112233445566778899aabbccddeeff"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("retry of an unknown message: %v", err)
	}
	alice.restartWith(nil)
	bob.start()
	if _, err := alice.m.Retry(ctx, "bob", m.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, alice, "bob", m.ID, StateDelivered)
	if _, err := alice.m.Retry(ctx, "bob", m.ID); !errors.Is(err, ErrNotFailed) {
		t.Errorf("retry of a delivered message: %v", err)
	}
	if got := messages(t, bob, "alice"); len(got) != 1 || got[0].Body != "will fail, then go" {
		t.Fatalf("bob has %+v", got)
	}
}

func TestNewSessionFloodIsRateLimited(t *testing.T) {
	alice, bob, eve := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "eve")
	link, _ := bob.m.Invite(context.Background())
	inv, err := identity.ParseInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	// Eve sends initiations that each start a new session (and fail).
	var frames [][]byte
	for i := 0; i < initBurst+6; i++ {
		in, _, err := handshake.Initiate(crand.Reader, eve.m.id, inv.Card.Bundle, ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		id := make([]byte, 16)
		crand.Read(id)
		frames = append(frames, wire.Marshal(&wirepb.Envelope{Version: 1, MessageId: id, Initiation: in.Marshal(), Ciphertext: bytes.Repeat([]byte{7}, 200)}))
	}
	rs, err := exchange(t, eve, bob, frames...)
	if err != nil {
		t.Fatal(err)
	}
	var rejected, retry int
	for _, r := range rs {
		switch r.Status {
		case wirepb.Response_STATUS_REJECTED:
			rejected++
		case wirepb.Response_STATUS_RETRY:
			retry++
		}
	}
	if rejected != initBurst || retry != 6 {
		t.Fatalf("flood: %d rejected, %d told to retry; want %d and 6", rejected, retry, initBurst)
	}
	// Another device is not affected.
	addContact(t, alice, bob)
	m := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m.ID, StateDelivered)
}
