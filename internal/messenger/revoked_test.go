package messenger

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
)

// lockedBuf is a log sink safe for the node's goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRevokedDeviceRefusedAfterRestart: bob learns that alice revoked her
// phone, then restarts (his index of devices is rebuilt from the store);
// the phone, still holding its session with bob, writes: bob refuses it
// as a revoked device (ErrRevokedDevice, logged as such), not as a
// stranger, and his chat with alice keeps everything it had.
func TestRevokedDeviceRefusedAfterRestart(t *testing.T) {
	var logs, phoneLogs lockedBuf
	alice := newNode(t, "alice")
	bob := newNodeTuned(t, "bob", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&phoneLogs, nil)) })
	m1 := send(t, alice, "bob", "I have a phone now")
	waitState(t, alice, "bob", m1.ID, StateDelivered)
	p1 := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p1.ID, StateDelivered)

	stolenDevice(phone) // it keeps sending: bob must refuse it by himself
	revokeDevice(t, alice, phone)
	m2 := send(t, alice, "bob", "the phone is gone")
	waitState(t, alice, "bob", m2.ID, StateDelivered)
	before := messages(t, bob, "alice")

	bob.stop()
	bob.start()
	stolen := send(t, phone, "bob", "the stolen phone writes")
	eventually(t, 30*time.Second, "the revoked phone's message refused", func() bool {
		return stateOf(t, phone, "bob", stolen.ID) == StateFailed
	})
	if !strings.Contains(logs.String(), "msg=revokedDeviceRefused") {
		t.Fatalf("bob did not refuse the phone as a revoked device:\n%s", logs.String())
	}
	if !strings.Contains(phoneLogs.String(), RefusedRevoked) {
		t.Errorf("the phone was not told why:\n%s", phoneLogs.String())
	}
	after := messages(t, bob, "alice")
	if len(after) != len(before) {
		t.Fatalf("bob's chat with alice: %d messages before, %d after the refusal", len(before), len(after))
	}
	for i := range before {
		if after[i].Body != before[i].Body {
			t.Fatalf("bob's chat changed: %+v, was %+v", after, before)
		}
	}
	if strings.Contains(logs.String(), "stolen phone") {
		t.Fatal("bob logged message content")
	}
}

// TestCardRollbackNotApplied: bob holds alice's card with device list
// version 2 (the phone revoked); a card of hers with version 1 but a newer
// serial — what the revoked phone, which never learnt of its revocation,
// signs and sends or publishes in the DHT — is refused by refreshCard
// (the path of both), logged as such: bob keeps the card without the
// phone.
func TestCardRollbackNotApplied(t *testing.T) {
	var logs lockedBuf
	alice := newNode(t, "alice")
	bob := newNodeTuned(t, "bob", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDevice(t, alice, "phone")
	// The phone's card now: version 1, listing both devices.
	stale, err := phone.m.card(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	revokeDevice(t, alice, phone)
	m := send(t, alice, "bob", "the phone is gone")
	waitState(t, alice, "bob", m.ID, StateDelivered)
	// The phone re-signs its card later (a newer serial), still version 1.
	if err := phone.m.DevicesChanged(context.Background()); err != nil {
		t.Fatal(err)
	}
	newer, err := phone.m.card(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	card, err := identity.ParseSignedCard(newer)
	if err != nil {
		t.Fatal(err)
	}
	if old, _ := identity.ParseSignedCard(stale); card.DeviceVersion != 1 || card.Serial <= old.Serial {
		t.Fatalf("the phone's card: version %d, serial %d (was %d)", card.DeviceVersion, card.Serial, old.Serial)
	}
	held := func() *identity.Card {
		var c *identity.Card
		err := bob.st.View(context.Background(), func(tx *store.Tx) error {
			sc, err := tx.ContactByAccount(alice.m.AccountID())
			if err == nil {
				c, err = identity.ParseSignedCard(sc.Card)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if h := held(); h.DeviceVersion != 2 || h.HasDevice(phone.n.PeerID()) {
		t.Fatalf("bob holds version %d", h.DeviceVersion)
	}
	err = bob.st.Update(context.Background(), func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(alice.m.AccountID())
		if err != nil {
			return err
		}
		return bob.m.refreshCard(tx, nil, c, card, newer)
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := held(); h.DeviceVersion != 2 || h.HasDevice(phone.n.PeerID()) {
		t.Fatalf("bob took the rolled-back card: version %d", h.DeviceVersion)
	}
	if !strings.Contains(logs.String(), "msg=cardRollbackRefused") {
		t.Fatalf("not logged:\n%s", logs.String())
	}
}
