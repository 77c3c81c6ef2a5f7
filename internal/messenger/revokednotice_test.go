package messenger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// stolenDevice makes n ignore its revocation, as modified code on a
// stolen phone would: what it keeps sending must be refused by others.
func stolenDevice(n *tnode) { n.m.revokedSt.ignore.Store(true) }

// ownQueue returns what n holds queued for its own device peer.
func ownQueue(t testing.TB, n *tnode, peer string) []store.DeviceItem {
	t.Helper()
	var items []store.DeviceItem
	if err := n.st.View(context.Background(), func(tx *store.Tx) (err error) { items, err = tx.DeviceOutbox(peer); return err }); err != nil {
		t.Fatal(err)
	}
	return items
}

// checkRevokedPhone checks what a revoked device shows and does: its
// revocation names the laptop, a send fails with ErrDeviceRevoked, its
// list marks it revoked, and the history it had is still there.
func checkRevokedPhone(t *testing.T, phone *tnode, laptop string, history []store.Message) {
	t.Helper()
	r := phone.m.Revoked()
	if r == nil || r.By != laptop || r.At.IsZero() {
		t.Fatalf("revocation %#v, want by %s", r, laptop)
	}
	if _, err := phone.m.Send(context.Background(), "bob", "the stolen phone writes"); !errors.Is(err, ErrDeviceRevoked) {
		t.Fatalf("a send from the revoked phone: %v, want ErrDeviceRevoked", err)
	}
	if _, err := phone.m.GroupSend(context.Background(), "nogroup", "x"); !errors.Is(err, ErrDeviceRevoked) {
		t.Fatalf("a group send from the revoked phone: %v", err)
	}
	var self *devices.Entry
	_ = phone.st.View(context.Background(), func(tx *store.Tx) error {
		l, err := devices.Load(tx)
		if err == nil {
			self = l.Find(phone.n.PeerID())
		}
		return err
	})
	if self == nil || !self.Revoked() {
		t.Fatalf("the phone's own list does not mark it revoked: %+v", self)
	}
	after := messages(t, phone, "bob")
	if len(after) < len(history) {
		t.Fatalf("the revoked phone lost history: %d messages, had %d", len(after), len(history))
	}
}

// TestRevokedDeviceToldAtOnce (issue 17): alice's laptop revokes her
// phone while both run: the phone gets the account-signed list marking it
// revoked, records it, and from then on refuses to send; its chat with bob
// stays readable.
func TestRevokedDeviceToldAtOnce(t *testing.T) {
	var logs lockedBuf
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	p := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p.ID, StateDelivered)
	history := messages(t, phone, "bob")
	events, unsub := phone.m.Subscribe()
	defer unsub()

	t0 := time.Now()
	revokeDevice(t, alice, phone)
	eventually(t, 30*time.Second, "the phone learns it was revoked", func() bool { return phone.m.Revoked() != nil })
	took := time.Since(t0) // a figure for the log, not asserted
	var notice *wirepb.RevocationNotice
	_ = alice.st.View(context.Background(), func(tx *store.Tx) (err error) { notice, err = alice.m.signedDeviceList(tx); return err })
	t.Logf("revoked to told: %v; notice %d B (list of 2 devices %d B + signature)", took, len(wire.Marshal(notice)), len(notice.List))
	checkRevokedPhone(t, phone, alice.n.PeerID(), history)
	eventually(t, 10*time.Second, "the laptop's notice acknowledged", func() bool { return len(ownQueue(t, alice, phone.n.PeerID())) == 0 })
	got := false
	for !got {
		select {
		case e := <-events:
			got = e.Type == EventRevoked
		case <-time.After(10 * time.Second):
			t.Fatal("no revoked event")
		}
	}
	if !strings.Contains(logs.String(), "msg=deviceRevoked") {
		t.Errorf("the phone did not log its revocation:\n%s", logs.String())
	}
	// It stays revoked across a restart, and sends nothing queued.
	phone.stop()
	phone.start()
	if phone.m.Revoked() == nil {
		t.Fatal("the revocation was not kept across a restart")
	}
	if _, err := phone.m.Send(context.Background(), "bob", "again"); !errors.Is(err, ErrDeviceRevoked) {
		t.Fatalf("send after restart: %v", err)
	}
}

// TestRevokedOfflineLearnsFromMailbox: the phone is off when the laptop
// revokes it; the notice goes to the phone's mailbox host; the laptop goes
// off too; the phone learns it was revoked at its next start.
func TestRevokedOfflineLearnsFromMailbox(t *testing.T) {
	host, _, _ := startMailboxHost(t)
	alice, bob := newNodeTuned(t, "alice", withMailbox(host)), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", withMailbox(host))
	p := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p.ID, StateDelivered)
	eventually(t, 30*time.Second, "the laptop holds the phone's own card", func() bool {
		var err error
		_ = alice.st.View(context.Background(), func(tx *store.Tx) error { _, err = tx.DeviceCard(0, phone.n.PeerID()); return nil })
		return err == nil
	})
	history := messages(t, phone, "bob")
	phonePeer, laptopPeer := phone.n.PeerID(), alice.n.PeerID()
	phone.stop()

	revokePeer(t, alice, phonePeer)
	// Deposited, it is done (like an ack, it needs no answer).
	eventually(t, 30*time.Second, "the notice deposited", func() bool {
		alice.m.mbMu.Lock()
		defer alice.m.mbMu.Unlock()
		for k, ok := range alice.m.deposited {
			if ok && strings.HasPrefix(k, "dev/"+phonePeer+"/") && strings.Contains(k, "/"+revokedItemPrefix) {
				return len(ownQueue(t, alice, phonePeer)) == 0
			}
		}
		return false
	})
	alice.stop()
	phone.start()
	eventually(t, 30*time.Second, "the phone learns it was revoked from its mailbox", func() bool { return phone.m.Revoked() != nil })
	checkRevokedPhone(t, phone, laptopPeer, history)
}

// queueForged puts a notice n in alice's device outbox for her (active)
// phone, as a revocation notice would go, and waits until the phone took
// it.
func queueForged(t *testing.T, alice, phone *tnode, n *wirepb.RevocationNotice) {
	t.Helper()
	id := make([]byte, wire.MessageIDSize)
	rand.Read(id)
	p := wire.Marshal(&wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Revoked{Revoked: n}})
	err := alice.st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.EnqueueDevice(store.DeviceItem{ContactID: 0, PeerID: phone.n.PeerID(), Own: true,
			MessageID: revokedItemPrefix + hex.EncodeToString(id), Payload: p, NextAttempt: alice.m.now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.m.wake()
	eventually(t, 30*time.Second, "the phone took the notice", func() bool { return len(ownQueue(t, alice, phone.n.PeerID())) == 0 })
}

// TestForgedRevocationIgnored: notices that do not prove a revocation —
// signed by another key, a list that does not revoke the phone, a list
// older than the phone's, a signature over another list — reach the
// phone over its real session with the laptop and change nothing.
func TestForgedRevocationIgnored(t *testing.T) {
	var logs lockedBuf
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	p := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p.ID, StateDelivered)
	var list devices.List
	if err := alice.st.View(context.Background(), func(tx *store.Tx) error {
		l, err := devices.Load(tx)
		if err == nil {
			list = *l
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if list.Find(phone.n.PeerID()) == nil || list.Version == 0 {
		t.Fatalf("alice's list %+v", list)
	}
	sign := func(id *keys.Identity, l devices.List) *wirepb.RevocationNotice {
		b, _ := json.Marshal(l)
		return &wirepb.RevocationNotice{List: b, Signature: id.Sign(deviceListDomain, b)}
	}
	revoked := func(version uint64) devices.List {
		l := devices.List{Version: version}
		for _, e := range list.Entries {
			if e.Device.PeerID == phone.n.PeerID() {
				e.RevokedAt = time.Now()
			}
			l.Entries = append(l.Entries, e)
		}
		return l
	}
	stranger, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	swapped := sign(alice.m.id, list)
	swapped.List, _ = json.Marshal(revoked(list.Version + 1))
	cases := []struct {
		name   string
		notice *wirepb.RevocationNotice
		reason string
	}{
		{"another key", sign(stranger, revoked(list.Version+1)), "not signed by the account"},
		{"does not revoke it", sign(alice.m.id, devices.List{Version: list.Version + 1, Entries: list.Entries}), "does not revoke this device"},
		{"older list", sign(alice.m.id, revoked(list.Version-1)), "older than our list"},
		{"signature of another list", swapped, "not signed by the account"},
	}
	for _, tc := range cases {
		queueForged(t, alice, phone, tc.notice)
		if r := phone.m.Revoked(); r != nil {
			t.Fatalf("%s: the phone took it as revoked: %+v", tc.name, r)
		}
		if !strings.Contains(logs.String(), "reason=\""+tc.reason+"\"") {
			t.Fatalf("%s: not rejected as %q:\n%s", tc.name, tc.reason, logs.String())
		}
	}
	p2 := send(t, phone, "bob", "still mine")
	waitState(t, phone, "bob", p2.ID, StateDelivered)
	// The real one, the same way, does.
	queueForged(t, alice, phone, sign(alice.m.id, revoked(list.Version+1)))
	if phone.m.Revoked() == nil {
		t.Fatal("a notice signed by the account that revokes the phone was not taken")
	}
}

// TestRefusalAloneDoesNotRevoke: the laptop revokes the phone while it is
// off and is off itself when the phone comes back; bob refuses the
// phone's message as from a revoked device, which the phone notes but
// does not take as proof (no signed list). When the laptop is back, its
// notice arrives and the phone stops.
func TestRefusalAloneDoesNotRevoke(t *testing.T) {
	var logs lockedBuf
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	p := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p.ID, StateDelivered)
	phonePeer := phone.n.PeerID()
	phone.pinAddr()
	alice.pinAddr()
	phone.stop()

	revokePeer(t, alice, phonePeer)
	eventually(t, 30*time.Second, "bob holds alice's card without the phone", func() bool {
		held, lists := heldCardLists(t, bob, alice.m.AccountID(), phonePeer)
		return held && !lists
	})
	if items := ownQueue(t, alice, phonePeer); len(items) != 1 || !strings.HasPrefix(items[0].MessageID, revokedItemPrefix) {
		t.Fatalf("alice's queue for the phone: %+v", items)
	}
	alice.stop()
	phone.start()
	stolen := send(t, phone, "bob", "the phone writes")
	eventually(t, 30*time.Second, "bob refuses the phone", func() bool { return stateOf(t, phone, "bob", stolen.ID) == StateFailed })
	eventually(t, 10*time.Second, "the phone noted the refusal", func() bool { return strings.Contains(logs.String(), "msg=refusedAsRevoked") })
	if r := phone.m.Revoked(); r != nil {
		t.Fatalf("a refusal alone revoked the phone: %+v", r)
	}
	alice.start()
	eventually(t, 30*time.Second, "the laptop's notice arrives", func() bool { return phone.m.Revoked() != nil })
	if r := phone.m.Revoked(); r.By != alice.n.PeerID() {
		t.Fatalf("revoked by %s", r.By)
	}
}

// TestRevokedDeviceRecordLoses (issue 17, DHT on loopback): the phone is
// off when the laptop revokes it, then runs again with no way to learn it
// (the laptop is off) and signs a card later than the laptop's. The
// account's record in the DHT stays the laptop's (its device list is
// newer), a record the phone forces in under its own card loses to it, and
// once it learns it was revoked the phone publishes nothing.
func TestRevokedDeviceRecordLoses(t *testing.T) {
	ctx := context.Background()
	boot, err := p2p.New(ctx, p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, EnableDHT: true, DHTServer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	dht := func(pc *p2p.Config) {
		pc.EnableDHT, pc.DHTServer, pc.BootstrapPeers = true, true, boot.Addrs()
	}
	alice := newNode(t, "alice")
	alice.net = dht
	alice.pinAddr()
	alice.restartWith(nil)
	phone := linkDevice(t, alice, "phone")
	phone.net = dht
	phone.pinAddr()
	phone.restartWith(nil)
	phonePeer := phone.n.PeerID()
	acct := alice.m.AccountID()
	recordOf := func() *identity.Card {
		rec, err := boot.GetValue(ctx, cardRecordKey(acct))
		if err != nil {
			return nil
		}
		c, _, err := identity.OpenCardRecord(acct, rec)
		if err != nil {
			t.Fatalf("the account's record: %v", err)
		}
		return c
	}
	phone.stop()
	revokePeer(t, alice, phonePeer)
	eventually(t, 30*time.Second, "the laptop's card in the DHT", func() bool {
		if err := alice.m.publishCard(ctx, alice.m.directory()); err != nil {
			return false
		}
		c := recordOf()
		return c != nil && !c.HasDevice(phonePeer)
	})
	laptopCard := recordOf()
	alice.stop()

	phone.start()
	// The phone, still unaware, publishes its card (signed now, later
	// than the laptop's, with the old list): the laptop's stays.
	eventually(t, 30*time.Second, "the phone's put refused as older", func() bool {
		card, _ := phone.m.currentCard()
		c, err := identity.ParseSignedCard(card)
		if err != nil || c.Serial <= laptopCard.Serial || c.DeviceVersion >= laptopCard.DeviceVersion {
			_, _ = phone.m.card(ctx)
			return false
		}
		rec, err := identity.SealCardRecord(acct, identity.CardRecordVersion(c), card)
		if err != nil {
			t.Fatal(err)
		}
		_ = phone.n.PutValue(ctx, cardRecordKey(acct), rec) // refused or not: the DHT selects
		return true
	})
	if c := recordOf(); c == nil || c.Serial != laptopCard.Serial || c.HasDevice(phonePeer) {
		t.Fatalf("the account's record is now %+v, want the laptop's (serial %d)", c, laptopCard.Serial)
	}
	if phone.m.Revoked() != nil {
		t.Fatal("the phone knows already: the test shows nothing")
	}
	// A contact's refusal sends the phone to the DHT: the laptop's card,
	// signed by the account with a newer list without it, is proof.
	phone.m.refusedAsRevoked("test")
	eventually(t, 30*time.Second, "the phone proves its revocation from the DHT", func() bool { return phone.m.Revoked() != nil })
	if err := phone.m.publishCard(ctx, phone.m.directory()); !errors.Is(err, ErrDeviceRevoked) {
		t.Fatalf("a revoked device publishes: %v", err)
	}
}

// TestRevokedWriterToldAgain: the laptop's notice for the phone is gone
// (given up, say) when the phone comes back and writes to the laptop (its
// start announces it): the laptop refuses it as revoked and sends it the
// notice again, and the phone stops.
func TestRevokedWriterToldAgain(t *testing.T) {
	var logs lockedBuf
	alice := newNodeTuned(t, "alice", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	phone := linkDevice(t, alice, "phone")
	eventually(t, 20*time.Second, "the laptop's queue for the phone empty", func() bool { return len(ownQueue(t, alice, phone.n.PeerID())) == 0 })
	phonePeer := phone.n.PeerID()
	phone.stop()
	revokePeer(t, alice, phonePeer)
	if err := alice.st.Update(context.Background(), func(tx *store.Tx) error { return tx.DeleteDeviceItems(phonePeer) }); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "msg=revocationNoticeQueued"); n != 1 {
		t.Fatalf("%d notices queued, want 1", n)
	}
	phone.start()
	eventually(t, 30*time.Second, "the phone told again", func() bool { return phone.m.Revoked() != nil })
	if !strings.Contains(logs.String(), "msg=revokedDeviceRefused") || strings.Count(logs.String(), "msg=revocationNoticeQueued") != 2 {
		t.Fatalf("the laptop did not refuse the phone and queue the notice again:\n%s", logs.String())
	}
}
