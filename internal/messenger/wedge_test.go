package messenger

// Tests of issue 13's "sessions that never wedge": each cause found
// behind the "already received or too old" loops has a test here that
// fails on the code before the fix.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// logBuf collects a node's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// loggedNode is newNode with its Info log kept.
func loggedNode(t *testing.T, name string) (*tnode, *logBuf) {
	lb := &logBuf{}
	n := newNodeTuned(t, name, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	return n, lb
}

// outboxLen is how many items n has queued for contact.
func outboxLen(t testing.TB, n *tnode, contact string) int {
	t.Helper()
	k := 0
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := resolve(tx, contact)
		if err != nil {
			return err
		}
		items, err := tx.Outbox(c.ID)
		k = len(items)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// noFaults fails if n counted any of kinds.
func noFaults(t testing.TB, n *tnode, kinds ...string) {
	t.Helper()
	f := n.m.Faults()
	for _, k := range kinds {
		if f[k] != 0 {
			t.Errorf("%s counted %d %s faults", n.name, f[k], k)
		}
	}
}

// TestGroupControlAckedOnce: the answer to a group control (an invitation,
// a sender key) names the envelope's id, not the outbox key; the sender
// read it as a bad response, reset the stream and retried the control for
// ever, which the member refused as "already received".
func TestGroupControlAckedOnce(t *testing.T) {
	ctx := context.Background()
	a, b := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, a, b)
	g, err := a.m.CreateGroup(ctx, "pair")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob joins", func() bool {
		gi, err := b.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2
	})
	eventually(t, 20*time.Second, "alice's controls to bob acked and gone", func() bool { return outboxLen(t, a, "bob") == 0 })
	eventually(t, 20*time.Second, "bob's controls to alice acked and gone", func() bool { return outboxLen(t, b, "alice") == 0 })
	noFaults(t, a, FaultBadResponse, FaultRejected, FaultUnreadableAck, FaultRefused)
	noFaults(t, b, FaultBadResponse, FaultRejected, FaultUnreadableAck, FaultRefused)
}

// TestGroupOfStrangersBurst: bob and carol are alice's contacts, not each
// other's; the invitation makes them contacts and both start a session to
// the other at once (crossing initiations), each carrying its sender key,
// while everyone posts. Everyone reads everything once, the strangers then
// talk 1:1 both ways, and nobody refuses anything or retries for ever.
func TestGroupOfStrangersBurst(t *testing.T) {
	ctx := context.Background()
	a, b, c := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	addContact(t, a, b)
	addContact(t, a, c)
	g, err := a.m.CreateGroup(ctx, "crew")
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"bob", "carol"} {
		if _, err := a.m.GroupAdd(ctx, g.ID, who); err != nil {
			t.Fatal(err)
		}
	}
	const each = 5
	nodes := []*tnode{a, b, c}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			eventually(t, 20*time.Second, n.name+" joins", func() bool {
				gi, err := n.m.Group(ctx, g.ID)
				return err == nil && len(gi.Members) == 3 && !gi.Gone
			})
			for i := range each {
				if _, err := n.m.GroupSend(ctx, g.ID, fmt.Sprintf("%s %d", n.name, i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, n := range nodes {
		eventually(t, 20*time.Second, n.name+" reads all", func() bool { return len(groupTexts(t, n, g.ID)) >= 3*each })
		seen := map[string]bool{}
		for _, txt := range groupTexts(t, n, g.ID) {
			if seen[txt] {
				t.Errorf("%s has %q twice", n.name, txt)
			}
			seen[txt] = true
		}
	}
	mb := send(t, b, "carol", "hi carol")
	mc := send(t, c, "bob", "hi bob")
	waitState(t, b, "carol", mb.ID, StateDelivered)
	waitState(t, c, "bob", mc.ID, StateDelivered)
	for _, pair := range [][2]*tnode{{a, b}, {a, c}, {b, a}, {b, c}, {c, a}, {c, b}} {
		eventually(t, 20*time.Second, pair[0].name+"'s outbox to "+pair[1].name+" drains", func() bool { return outboxLen(t, pair[0], pair[1].name) == 0 })
	}
	for _, n := range nodes {
		noFaults(t, n, FaultBadResponse, FaultRejected, FaultUnreadableAck, FaultRefused)
	}
}

// TestDuplicateGroupControlAckedAgain: a group control whose ack was lost
// comes again; it is answered with the same ack, not refused as a replay.
func TestDuplicateGroupControlAckedAgain(t *testing.T) {
	ctx := context.Background()
	a, b := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, a, b)
	a.pinAddr()
	b.pinAddr()
	b.stop()
	g, err := a.m.CreateGroup(ctx, "pair")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	err = a.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, "bob")
		if err != nil {
			return err
		}
		items, err := tx.Outbox(c.ID)
		for _, it := range items {
			if strings.HasPrefix(it.MessageID, groupItemPrefix) {
				frames = append(frames, it.Payload)
			}
		}
		return err
	})
	if err != nil || len(frames) == 0 {
		t.Fatalf("no group controls queued: %v", err)
	}
	a.m.Close()
	b.start()
	first, err := exchange(t, a, b, frames...)
	if err != nil {
		t.Fatal(err)
	}
	again, err := exchange(t, a, b, frames...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range frames {
		if first[i].Status != wirepb.Response_STATUS_OK || again[i].Status != wirepb.Response_STATUS_OK {
			t.Fatalf("control %d: %v, then %v %q", i, first[i].Status, again[i].Status, again[i].Error)
		}
		if !bytes.Equal(first[i].Ack, again[i].Ack) {
			t.Fatalf("control %d: the copy got another ack", i)
		}
	}
	noFaults(t, b, FaultRejected)
}

// TestGroupMessageBeforeTheOpThatAddsItsSender: carol's message reaches
// bob before the op that adds carol does; it is kept (pending) and read
// once the op and carol's key come, not dropped.
func TestGroupMessageBeforeTheOpThatAddsItsSender(t *testing.T) {
	ctx := context.Background()
	a, b, c := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	addContact(t, a, b)
	addContact(t, a, c)
	g, err := a.m.CreateGroup(ctx, "crew")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob joins", func() bool {
		gi, err := b.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2
	})
	b.pinAddr()
	b.stop()
	if _, err := a.m.GroupAdd(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "carol joins", func() bool {
		gi, err := c.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 3
	})
	if _, err := c.m.GroupSend(ctx, g.ID, "early"); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	gid, topic := []byte(nil), ""
	err = c.st.View(ctx, func(tx *store.Tx) error {
		gr, err := resolveGroup(tx, g.ID)
		if err != nil {
			return err
		}
		gid, topic = gr.ID, groupTopic(gr.Secret)
		ms, err := tx.GroupMessages(gr.ID, 0, 0)
		for _, m := range ms { // her own post, not alice's card announcements
			if m.Body == "early" {
				raw = m.Raw
			}
		}
		return err
	})
	if err != nil || raw == nil {
		t.Fatalf("carol's message: %v", err)
	}
	// Bob's node, offline, gets carol's message as from the topic: he
	// does not know carol as a member yet.
	st, err := store.Open(filepath.Join(b.dir, "db"), b.key)
	if err != nil {
		t.Fatal(err)
	}
	off, err := New(ctx, Config{Store: st, PeerID: "offline"})
	if err != nil {
		t.Fatal(err)
	}
	off.receiveGroupMessages(ctx, gid, topic, "", [][]byte{raw}, false)
	pending := 0
	err = st.View(ctx, func(tx *store.Tx) error {
		ps, err := tx.PendingGroupMessages(gid)
		pending = len(ps)
		return err
	})
	off.Close()
	st.Close()
	if err != nil || pending != 1 {
		t.Fatalf("bob kept %d pending messages (%v), want carol's 1", pending, err)
	}
	b.start()
	eventually(t, 20*time.Second, "bob reads carol's early message", func() bool { return groupHas(t, b, g.ID, "early") })
}

// TestRefusedSessionHeals: bob lost his session with alice (a restored
// old copy, a bug); alice's messages are refused as unreadable. After a
// few refusals alice starts a fresh session and the next message goes
// through; the refused ones show failed (and can be retried).
func TestRefusedSessionHeals(t *testing.T) {
	ctx := context.Background()
	a, b := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, a, b)
	m := send(t, a, "bob", "first")
	waitState(t, a, "bob", m.ID, StateDelivered)
	b.stop()
	st, err := store.Open(filepath.Join(b.dir, "db"), b.key)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, "alice")
		if err != nil {
			return err
		}
		return tx.PutSession(c.ID, wire.Marshal(&wirepb.SessionRecord{Version: wire.Version}))
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	b.start()
	for i := range refusalsBeforeReset {
		m := send(t, a, "bob", fmt.Sprint("refused ", i))
		waitState(t, a, "bob", m.ID, StateFailed)
	}
	m = send(t, a, "bob", "after the fresh handshake")
	waitState(t, a, "bob", m.ID, StateDelivered)
	if a.m.Faults()[FaultSessionReset] != 1 {
		t.Fatalf("faults: %v", a.m.Faults())
	}
	m = send(t, b, "alice", "and back")
	waitState(t, b, "alice", m.ID, StateDelivered)
}

// TestBadInputLoggedOnceCounted: forged envelopes, group controls for an
// unknown group and acks for unknown messages are each counted, logged
// once (per kind and peer), and leave no queue behind.
func TestBadInputLoggedOnceCounted(t *testing.T) {
	ctx := context.Background()
	a := newNode(t, "alice")
	b, blog := loggedNode(t, "bob")
	addContact(t, a, b)
	m := send(t, a, "bob", "hello")
	waitState(t, a, "bob", m.ID, StateDelivered)
	const times = 3
	// Forged envelopes on alice's session: refused each time.
	e := sealTo(t, a, "bob", &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Text{Text: &wirepb.Text{Body: "to be forged"}}})
	var forged [][]byte
	for i := range times {
		f := &wirepb.Envelope{Version: e.Version, MessageId: make([]byte, wire.MessageIDSize), Ciphertext: bytes.Clone(e.Ciphertext)}
		rand.Read(f.MessageId)
		f.Ciphertext[len(f.Ciphertext)-1-i] ^= 1
		forged = append(forged, wire.Marshal(f))
	}
	for _, f := range forged {
		rs, err := exchange(t, a, b, f)
		if err != nil || rs[0].Status != wirepb.Response_STATUS_REJECTED {
			t.Fatalf("forged envelope: %v %v", rs, err)
		}
	}
	// Group controls for a group bob does not know, and acks naming
	// nothing bob sent, through alice's outbox.
	for range times {
		err := a.st.Update(ctx, func(tx *store.Tx) error {
			rx := newBatch()
			c, err := resolve(tx, "bob")
			if err != nil {
				return err
			}
			unknown := make([]byte, 32)
			rand.Read(unknown)
			if err := a.m.queueGroupControl(tx, rx, &groupState{}, nil, c.AccountID, &wirepb.GroupControl{GroupId: unknown}); err != nil {
				return err
			}
			rec, err := rx.record(tx, c.ID)
			if err != nil {
				return err
			}
			id := make([]byte, wire.MessageIDSize)
			rand.Read(id)
			p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Ack{Ack: &wirepb.Ack{MessageIds: [][]byte{id}}}}
			s, err := a.m.encrypt(rec, c, id, p)
			if err != nil {
				return err
			}
			rx.setRecord(c.ID, rec)
			if err := tx.Enqueue(store.OutboxItem{MessageID: ackItemPrefix + fmt.Sprintf("%x", id), ContactID: c.ID, Payload: s.bytes, NextAttempt: a.m.now()}); err != nil {
				return err
			}
			return rx.flush(tx)
		})
		if err != nil {
			t.Fatal(err)
		}
		a.m.wake()
	}
	eventually(t, 20*time.Second, "alice's outbox drains", func() bool { return outboxLen(t, a, "bob") == 0 })
	defer func() { t.Logf("bob faults %v", b.m.Faults()) }()
	eventually(t, 20*time.Second, "bob counts them all", func() bool {
		f := b.m.Faults()
		return f[FaultRejected] == times && f[FaultUnknownGroup] == times && f[FaultUnknownAck] == times
	})
	for _, kind := range []string{FaultRejected, FaultUnknownGroup, FaultUnknownAck} {
		if k := blog.count("msg=" + kind + " "); k != 1 {
			t.Errorf("%s logged %d times at info, want once", kind, k)
		}
	}
	if blog.count("to be forged") != 0 || blog.count("hello") != 0 {
		t.Error("content in the log")
	}
}

// sealTo encrypts a payload from n to contact on their session (and keeps
// the advanced session), without queueing it.
func sealTo(t *testing.T, n *tnode, contact string, p *wirepb.Payload) *wirepb.Envelope {
	t.Helper()
	var env *wirepb.Envelope
	err := n.st.Update(context.Background(), func(tx *store.Tx) error {
		rx := newBatch()
		c, err := resolve(tx, contact)
		if err != nil {
			return err
		}
		rec, err := rx.record(tx, c.ID)
		if err != nil {
			return err
		}
		id := make([]byte, wire.MessageIDSize)
		rand.Read(id)
		s, err := n.m.encrypt(rec, c, id, p)
		if err != nil {
			return err
		}
		env = s.env
		rx.setRecord(c.ID, rec)
		return rx.flush(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestPendingGroupMessageReadAgainIsResolved: a message kept pending (its
// key or its sender's op still on the way) that comes again once the key
// is there is resolved. It was decrypted (using up its key) and then not
// stored, since a row with its id existed: left pending for ever, every
// later attempt said "senderkey: message already received or too old".
func TestPendingGroupMessageReadAgainIsResolved(t *testing.T) {
	ctx := context.Background()
	a, b, c := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	addContact(t, a, b)
	addContact(t, a, c)
	g, err := a.m.CreateGroup(ctx, "crew")
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"bob", "carol"} {
		if _, err := a.m.GroupAdd(ctx, g.ID, who); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*tnode{b, c} {
		eventually(t, 20*time.Second, n.name+" joins", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3 && !gi.Gone
		})
	}
	if _, err := c.m.GroupSend(ctx, g.ID, "first"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob reads carol", func() bool { return groupHas(t, b, g.ID, "first") })
	b.pinAddr()
	b.stop()
	if _, err := c.m.GroupSend(ctx, g.ID, "again"); err != nil {
		t.Fatal(err)
	}
	var raw, gid []byte
	var topic string
	err = c.st.View(ctx, func(tx *store.Tx) error {
		gr, err := resolveGroup(tx, g.ID)
		if err != nil {
			return err
		}
		gid, topic = gr.ID, groupTopic(gr.Secret)
		ms, err := tx.GroupMessages(gr.ID, 0, 0)
		for _, m := range ms {
			if m.Body == "again" {
				raw = m.Raw
			}
		}
		return err
	})
	if err != nil || raw == nil {
		t.Fatalf("carol's message: %v", err)
	}
	st, err := store.Open(filepath.Join(b.dir, "db"), b.key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	off, err := New(ctx, Config{Store: st, PeerID: "offline"})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	// Bob kept it pending earlier (as on a stale view of the membership).
	err = st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.PutGroupMessage(&store.GroupMessage{GroupID: gid, ID: groupMsgID(raw), Sender: c.m.AccountID(), At: time.Now(), Raw: raw, Pending: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	off.receiveGroupMessages(ctx, gid, topic, "", [][]byte{raw}, false)
	_, ms, err := off.GroupMessages(ctx, g.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Text == "again" {
			return
		}
	}
	t.Fatal("the message read again is still pending")
}
