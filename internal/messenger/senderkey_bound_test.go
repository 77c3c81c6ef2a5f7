package messenger

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// TestSenderKeysForUnknownGroupsBounded: a contact sends sender keys for
// many made-up groups and an endless series of epochs for one of them.
// Bob keeps keys for at most maxPlaceholdersPerContact unknown groups of
// that contact and maxKeyEpochs epochs per member; the newest epochs stay.
func TestSenderKeysForUnknownGroupsBounded(t *testing.T) {
	ctx := context.Background()
	a, b := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, a, b)
	addContact(t, b, a)
	m := send(t, a, "bob", "hello")
	waitState(t, a, "bob", m.ID, StateDelivered)

	fixed := make([]byte, 32)
	rand.Read(fixed)
	const groups, epochs = maxPlaceholdersPerContact + 8, maxKeyEpochs + 4
	queue := func(gid []byte, epoch uint32) {
		t.Helper()
		s, err := senderkey.New(rand.Reader, epoch)
		if err != nil {
			t.Fatal(err)
		}
		err = a.st.Update(ctx, func(tx *store.Tx) error {
			rx := newBatch()
			c, err := resolve(tx, "bob")
			if err != nil {
				return err
			}
			gc := &wirepb.GroupControl{GroupId: gid, SenderKey: s.Distribution().Marshal()}
			if err := a.m.queueGroupControl(tx, rx, &groupState{}, nil, c.AccountID, gc); err != nil {
				return err
			}
			return rx.flush(tx)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for e := range uint32(epochs) {
		queue(fixed, e)
	}
	for range groups - 1 {
		gid := make([]byte, 32)
		rand.Read(gid)
		queue(gid, 0)
	}
	a.m.wake()
	eventually(t, 30*time.Second, "alice's outbox drains", func() bool { return outboxLen(t, a, "bob") == 0 })

	var kept int
	var have []bool
	err := b.st.View(ctx, func(tx *store.Tx) (err error) {
		if kept, err = tx.PlaceholdersKeyedBy(a.m.AccountID()); err != nil {
			return err
		}
		for e := range uint32(epochs) {
			_, err := tx.GroupKey(fixed, keyOwner(a.m.AccountID(), deviceTag(a.n.PeerID())), e) // the key of alice's device
			have = append(have, err == nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if kept != maxPlaceholdersPerContact {
		t.Errorf("bob keeps keys of alice for %d unknown groups, want %d", kept, maxPlaceholdersPerContact)
	}
	for e, ok := range have {
		if want := e >= epochs-maxKeyEpochs; ok != want {
			t.Errorf("epoch %d kept: %v, want %v (the %d newest)", e, ok, want, maxKeyEpochs)
		}
	}
}
