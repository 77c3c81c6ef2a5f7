package messenger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
	"google.golang.org/protobuf/proto"
)

// historyOf returns n's history transfer (incoming or not), or a zero one.
func historyOf(t testing.TB, n *tnode, incoming bool) HistoryTransfer {
	t.Helper()
	hs, err := n.m.History(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Incoming == incoming {
			return h
		}
	}
	return HistoryTransfer{}
}

func waitHistory(t testing.TB, n *tnode, incoming bool, states ...string) HistoryTransfer {
	t.Helper()
	var h HistoryTransfer
	eventually(t, 30*time.Second, n.name+"'s history transfer "+strings.Join(states, "/"), func() bool {
		h = historyOf(t, n, incoming)
		for _, s := range states {
			if h.State == s {
				return true
			}
		}
		return false
	})
	return h
}

// historyPair makes alice and bob (both carrying files) and a chat
// between them with messages both ways, one read, and a file.
func historyPair(t *testing.T) (alice, bob *tnode, sent []store.Message) {
	t.Helper()
	ctx := context.Background()
	alice, _ = mediaNode(t, "alice")
	bob, _ = mediaNode(t, "bob")
	addContact(t, alice, bob)
	a1 := send(t, alice, "bob", "first from alice")
	waitState(t, alice, "bob", a1.ID, StateDelivered)
	eventually(t, 20*time.Second, "bob knows alice", func() bool { _, err := bob.m.Contact(ctx, "alice"); return err == nil })
	b1 := send(t, bob, "alice", "reply from bob")
	waitState(t, bob, "alice", b1.ID, StateDelivered)
	a2 := send(t, alice, "bob", "second from alice")
	waitState(t, alice, "bob", a2.ID, StateDelivered)
	if _, err := alice.m.MarkRead(ctx, "bob", 0); err != nil {
		t.Fatal(err)
	}
	return alice, bob, messages(t, alice, "bob")
}

// TestHistoryToLinkedDevice is issue 17's history transfer: a device
// linked to alice gets her chats — 1:1 messages with their direction,
// state, timestamps and ids in their order, group messages, a file's
// manifest (fetched later) — while a message it had already is kept once
// and one it got meanwhile stays after the history; importing again adds
// nothing; and the export is deleted on both sides.
func TestHistoryToLinkedDevice(t *testing.T) {
	ctx := context.Background()
	alice, bob, _ := historyPair(t)
	// A file, and a group with a message.
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte(strings.Repeat("samizdat ", 40000)), 0o600); err != nil {
		t.Fatal(err)
	}
	fm, err := alice.m.SendFile(ctx, "bob", path, "the notes")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, alice, "bob", fm.ID, StateDelivered)
	g, err := alice.m.CreateGroup(ctx, "club")
	if err != nil {
		t.Fatal(err)
	}
	// Adding bob stores a batch of members' cards, not shown (nor exported).
	if _, err := alice.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	gm, err := alice.m.GroupSend(ctx, g.ID, "hello club")
	if err != nil {
		t.Fatal(err)
	}
	a3 := send(t, alice, "bob", "after the file")
	waitState(t, alice, "bob", a3.ID, StateDelivered)
	want := messages(t, alice, "bob")
	if len(want) != 5 {
		t.Fatalf("alice has %d messages with bob, want 5", len(want))
	}

	dir := t.TempDir()
	alice2 := linkDeviceTuned(t, alice, "alice-laptop", mediaTune(t, dir, MailboxHost{}))
	// Arrived on the new device before the history: one message the
	// history holds too (kept once), one it does not (kept, shown after).
	err = alice2.st.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(bob.m.AccountID())
		if err != nil {
			return err
		}
		dup := want[4]
		dup.Seq, dup.Ord = 0, 0
		if _, err := tx.InsertMessage(&dup); err != nil {
			return err
		}
		_, err = tx.InsertMessage(&store.Message{ID: strings.Repeat("ab", 16), ContactID: c.ID, Body: "meanwhile", SentAt: time.Now(), State: StateReceived})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.m.SendHistory(ctx, alice2.n.PeerID()); err != nil {
		t.Fatal(err)
	}
	in := waitHistory(t, alice2, true, HistoryComplete, HistoryFailed)
	if in.State != HistoryComplete || in.Messages != 6 || in.Imported != 5 {
		t.Fatalf("new device's transfer = %+v, want complete with 6 messages, 5 imported", in)
	}
	out := waitHistory(t, alice, false, HistoryComplete)
	t.Logf("export: %d messages, %d bytes, %d chunks", out.Messages, out.Bytes, out.Total)

	got := messages(t, alice2, "bob")
	if len(got) != 6 {
		t.Fatalf("new device has %d messages with bob, want 6: %+v", len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.ID || g.Body != w.Body || g.Outgoing != w.Outgoing || g.State != w.State || !g.SentAt.Equal(w.SentAt.Truncate(time.Millisecond)) {
			t.Errorf("message %d on the new device = %+v, want %+v", i, g, w)
		}
	}
	if got[5].Body != "meanwhile" {
		t.Errorf("the message that arrived meanwhile is at %q, want last", got[4].Body)
	}
	if got[0].State != StateDelivered || got[1].State != StateRead || !got[0].Outgoing || got[1].Outgoing {
		t.Errorf("directions/states: %+v", got[:2])
	}
	_, gms, err := alice2.m.GroupMessages(ctx, g.ID, 0, 0)
	if err != nil || len(gms) != 1 || gms[0].ID != gm.ID || gms[0].Text != "hello club" || !gms[0].Outgoing {
		t.Fatalf("group messages on the new device = %+v, %v", gms, err)
	}
	// The file: its manifest came along, and the new device fetches it.
	eventually(t, 30*time.Second, "the file on the new device", func() bool {
		ts, _ := alice2.m.Transfers(ctx)
		for _, tr := range ts {
			if tr.MessageID == fm.ID && tr.State == media.StateComplete {
				return true
			}
		}
		return false
	})
	// The export is gone from both devices.
	assertNoExport(t, alice)
	assertNoExport(t, alice2)

	// Offered again: nothing new is stored.
	if err := alice.m.SendHistory(ctx, alice2.n.PeerID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the second transfer", func() bool {
		h := historyOf(t, alice2, true)
		return h.ID != in.ID && h.State == HistoryComplete
	})
	if h := historyOf(t, alice2, true); h.Imported != 0 {
		t.Errorf("second import stored %d messages, want 0", h.Imported)
	}
	if n := len(messages(t, alice2, "bob")); n != 6 {
		t.Errorf("after a second import: %d messages, want 6", n)
	}
}

// assertNoExport waits until n holds no export any more (its chunks
// removed with it).
func assertNoExport(t *testing.T, n *tnode) {
	t.Helper()
	eventually(t, 20*time.Second, n.name+" drops the export", func() bool { return len(exportsHeld(n)) == 0 })
}

// exportsHeld lists the transfers of n that still hold their export.
func exportsHeld(n *tnode) []historyJob {
	ctx := context.Background()
	var hs, out []historyJob
	_ = n.st.View(ctx, func(tx *store.Tx) error {
		peers, _ := historyPeers(tx)
		for _, p := range append(peers, "") {
			name := historyBlob + p
			if p == "" {
				name = historyInBlob
			}
			if j, err := getHistoryJob(tx, name); err == nil {
				hs = append(hs, j)
			}
		}
		return nil
	})
	for _, j := range hs {
		if len(j.Manifest) > 0 {
			out = append(out, j)
		}
	}
	return out
}

// TestHistoryResumesAfterRestart stops the new device halfway through
// the export, and restarts the offering device meanwhile: the fetch goes
// on from the chunks the new device has, and the history arrives whole.
func TestHistoryResumesAfterRestart(t *testing.T) {
	ctx := context.Background()
	alice, bob, _ := historyPair(t)
	alice.pinAddr() // restarted below: the new device finds it where it was
	// Enough history for many chunks (stored directly: no need to send).
	const extra = 3000
	body := strings.Repeat("x", 1000)
	err := alice.st.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(bob.m.AccountID())
		if err != nil {
			return err
		}
		for i := range extra {
			id := make([]byte, 16)
			rand.Read(id)
			at := time.Now().Add(time.Duration(i-extra) * time.Second)
			if _, err := tx.InsertMessage(&store.Message{ID: hex.EncodeToString(id), ContactID: c.ID, Outgoing: true, Body: body, SentAt: at, At: at, State: StateDelivered}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.m.SetHistoryLimits(HistoryLimits{PerChat: extra + 10})
	dir := t.TempDir()
	alice2 := linkDeviceTuned(t, alice, "alice-laptop", mediaTune(t, dir, MailboxHost{}))
	alice2.m.SetHistoryLimits(HistoryLimits{PerChat: extra + 10})
	half := make(chan int, 1)
	alice2.m.hist.init()
	alice2.m.hist.mu.Lock()
	alice2.m.hist.fetchHook = func(ctx context.Context, done, total int) {
		if done >= total/2 {
			select {
			case half <- done:
			default:
			}
			<-ctx.Done() // hold the fetch until the node stops
		}
	}
	alice2.m.hist.mu.Unlock()
	if err := alice.m.SendHistory(ctx, alice2.n.PeerID()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var had int
	select {
	case had = <-half:
	case <-time.After(60 * time.Second):
		t.Fatal("the fetch never got halfway")
	}
	alice2.stop()
	alice.stop()
	alice.start()
	alice.m.SetHistoryLimits(HistoryLimits{PerChat: extra + 10})
	first := make(chan int, 1)
	alice2.start()
	alice2.m.SetHistoryLimits(HistoryLimits{PerChat: extra + 10})
	alice2.m.hist.init()
	alice2.m.hist.mu.Lock()
	alice2.m.hist.fetchHook = func(_ context.Context, done, total int) {
		select {
		case first <- done:
		default:
		}
	}
	alice2.m.hist.mu.Unlock()
	alice2.m.hist.wake()
	h := waitHistory(t, alice2, true, HistoryComplete, HistoryFailed)
	if h.State != HistoryComplete || h.Messages != extra+3 || h.Imported != extra+3 {
		t.Fatalf("after the restart: %+v, want complete with %d messages", h, extra+3)
	}
	if f := <-first; f < had {
		t.Errorf("after the restart the fetch started at %d chunks, it had %d", f, had)
	}
	t.Logf("export of %d messages: %d bytes, %d chunks; %d held at the restart; offered to imported in %v", h.Messages, h.Bytes, h.Total, had, time.Since(t0))
	if n := len(messages(t, alice2, "bob")); n != extra+3 {
		t.Errorf("new device has %d messages, want %d", n, extra+3)
	}
	waitHistory(t, alice, false, HistoryComplete)
}

// TestHistoryBadExportRefused: an export that is malformed (its header
// promises more messages than it holds), or larger than the new device
// takes, is refused with a clear error and nothing of it is stored; the
// offering device learns it was refused.
func TestHistoryBadExportRefused(t *testing.T) {
	ctx := context.Background()
	alice, _, _ := historyPair(t)
	dir := t.TempDir()
	alice2 := linkDeviceTuned(t, alice, "alice-laptop", mediaTune(t, dir, MailboxHost{}))

	// Malformed: an honest export with its header's count raised.
	alice.m.hist.init()
	alice.m.hist.mu.Lock()
	alice.m.hist.export = func() ([]byte, error) {
		b, _, err := alice.m.buildExport(ctx, alice.m.historyLimits())
		if err != nil {
			return nil, err
		}
		return tamperHeader(t, b), nil
	}
	alice.m.hist.mu.Unlock()
	if err := alice.m.SendHistory(ctx, alice2.n.PeerID()); err != nil {
		t.Fatal(err)
	}
	h := waitHistory(t, alice2, true, HistoryComplete, HistoryFailed)
	if h.State != HistoryFailed || !strings.Contains(h.Error, "history export is malformed") {
		t.Fatalf("tampered export: %+v, want failed as malformed", h)
	}
	if n := len(messages(t, alice2, "bob")); n != 0 {
		t.Fatalf("a refused export left %d messages", n)
	}
	if o := waitHistory(t, alice, false, HistoryRefused); !strings.Contains(o.Error, "malformed") {
		t.Errorf("alice's side: %+v", o)
	}
	assertNoExport(t, alice)
	assertNoExport(t, alice2)

	// Too large for the new device: refused before a chunk is fetched.
	alice.m.hist.mu.Lock()
	alice.m.hist.export = nil
	alice.m.hist.mu.Unlock()
	alice2.m.SetHistoryLimits(HistoryLimits{MaxBytes: 100})
	if err := alice.m.SendHistory(ctx, alice2.n.PeerID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the large export refused", func() bool {
		h := historyOf(t, alice2, true)
		return h.State == HistoryFailed && strings.Contains(h.Error, "history export is too large")
	})
	if n := len(messages(t, alice2, "bob")); n != 0 {
		t.Fatalf("a refused export left %d messages", n)
	}
	waitHistory(t, alice, false, HistoryRefused)
}

// tamperHeader raises the message count of an export's header by one.
func tamperHeader(t *testing.T, b []byte) []byte {
	t.Helper()
	return tamperExportHeader(t, b)
}

// TestHistoryOfferOnlyFromOwnDevice: an offer from a device our list does
// not hold as active is refused, nothing recorded; and a contact cannot
// make one (the history payload is refused on a contact's session).
func TestHistoryOfferOnlyFromOwnDevice(t *testing.T) {
	ctx := context.Background()
	alice, bob, _ := historyPair(t)
	dir := t.TempDir()
	alice2 := linkDeviceTuned(t, alice, "alice-laptop", mediaTune(t, dir, MailboxHost{}))
	// Bob learns alice's new device with her next message.
	a3 := send(t, alice, "bob", "from alice, linked")
	waitState(t, alice, "bob", a3.ID, StateDelivered)
	eventually(t, 20*time.Second, "bob holds alice's new card", func() bool {
		var ok bool
		_ = bob.st.View(ctx, func(tx *store.Tx) error {
			c, err := tx.ContactByAccount(alice.m.AccountID())
			if err == nil {
				if card, err := identity.ParseSignedCard(c.Card); err == nil {
					ok = card.HasDevice(alice2.n.PeerID())
				}
			}
			return nil
		})
		return ok
	})
	// The new device's list no longer holds alice's first device.
	revokeDevice(t, alice2, alice)
	if err := alice.m.SendHistory(ctx, alice2.n.PeerID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the offer tried", func() bool {
		var j historyJob
		_ = alice.st.View(ctx, func(tx *store.Tx) (err error) { j, err = getHistoryJob(tx, historyBlob+alice2.n.PeerID()); return err })
		return j.State == HistoryOffered && j.Attempts > 0
	})
	if h := historyOf(t, alice2, true); h.ID != "" {
		t.Fatalf("an offer from a revoked device was recorded: %+v", h)
	}
	// Bob (a contact, not a device of alice's) offers history: refused.
	if err := bob.m.SendHistory(ctx, alice2.n.PeerID()); err == nil {
		t.Fatal("bob could offer history to a device not his")
	}
	if err := sendHistoryAsContact(t, bob, alice2); err == nil {
		t.Fatal("alice's new device took a history offer from a contact")
	}
	if h := historyOf(t, alice2, true); h.ID != "" {
		t.Fatalf("an offer from a contact was recorded: %+v", h)
	}
	// Alice revokes the device that never took it: the export goes at
	// the next attempt (due now).
	revokeDevice(t, alice, alice2)
	alice.m.hist.mu.Lock()
	alice.m.hist.nudged[alice2.n.PeerID()] = true
	alice.m.hist.mu.Unlock()
	alice.m.hist.wake()
	if h := waitHistory(t, alice, false, HistoryFailed); h.Error != "the device was revoked" {
		t.Errorf("after revoking: %+v", h)
	}
	assertNoExport(t, alice)
}

// tamperExportHeader raises the message count in an export's header.
func tamperExportHeader(t *testing.T, b []byte) []byte {
	t.Helper()
	r := bytes.NewReader(b)
	hb, err := wire.ReadFrame(r)
	if err != nil {
		t.Fatal(err)
	}
	var hdr wirepb.HistoryHeader
	if err := proto.Unmarshal(hb, &hdr); err != nil {
		t.Fatal(err)
	}
	hdr.Messages++
	var out bytes.Buffer
	if err := wire.WriteFrame(&out, wire.Marshal(&hdr)); err != nil {
		t.Fatal(err)
	}
	out.Write(b[len(b)-r.Len():])
	return out.Bytes()
}

// sendHistoryAsContact makes from send to's device a history offer on
// from's session with it as a device of a contact (from must hold the
// card that lists it).
func sendHistoryAsContact(t *testing.T, from, to *tnode) error {
	t.Helper()
	ctx := context.Background()
	var cid int64
	err := from.st.View(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(to.m.AccountID())
		if err == nil {
			cid = c.ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, wire.MessageIDSize)
	rand.Read(id)
	man, err := from.m.cfg.Media.PrepareReader(strings.NewReader("not history"), "history", 11, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_History{History: &wirepb.HistoryOffer{
		TransferId: id, Manifest: man.Marshal(), Messages: 1}}}
	return from.m.sendDirect(ctx, store.DeviceItem{ContactID: cid, PeerID: to.n.PeerID()}, p)
}

// FuzzParseExport: whatever the export's plaintext, parseExport returns
// checked messages or ErrBadHistory, never panics; a well-formed export
// parses to as many messages as its header says.
func FuzzParseExport(f *testing.F) {
	var ok bytes.Buffer
	wire.WriteFrame(&ok, wire.Marshal(&wirepb.HistoryHeader{Version: wire.HistoryFormat, Messages: 2}))
	wire.WriteFrame(&ok, wire.Marshal(&wirepb.HistoryBatch{Messages: []*wirepb.HistoryMessage{
		{MessageId: bytes.Repeat([]byte{1}, 16), Contact: "acct", Outgoing: true, Body: "hi", State: StateSent},
		{MessageId: bytes.Repeat([]byte{2}, 32), Group: []byte{9}, Sender: "acct", Body: "club"},
	}}))
	if ms, err := parseExport(ok.Bytes()); err != nil || len(ms) != 2 || ms[0].ord != -3 || ms[1].ord != -2 {
		f.Fatalf("a well-formed export: %+v, %v", ms, err)
	}
	f.Add(ok.Bytes())
	f.Add(ok.Bytes()[:ok.Len()-3])
	f.Add([]byte{0, 0, 0, 1, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parseExport(b)
		if err != nil {
			if !errors.Is(err, ErrBadHistory) {
				t.Fatalf("error %v is not ErrBadHistory", err)
			}
			return
		}
		for _, m := range ms {
			if checkHistoryMessage(m.hm) != nil || m.ord >= 0 {
				t.Fatalf("unchecked message %+v", m)
			}
		}
	})
}
