package store

import (
	"errors"
	"testing"
	"time"
)

// TestSyncClockAndOwnItems: the newest change per synced item is kept;
// items for our own devices (contact 0, no contact row) are queued; a
// deleted contact's copies go with it (0009, devsync).
func TestSyncClockAndOwnItems(t *testing.T) {
	s, _ := newTest(t)
	cid := addContact(t, s, "acct-a", "alice")
	now := time.Unix(1000, 0)
	update(t, s, func(tx *Tx) error {
		if _, _, err := tx.SyncClock("contact/acct-a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("SyncClock of nothing: %v", err)
		}
		if err := tx.PutSyncClock("contact/acct-a", 5, "peer-x"); err != nil {
			return err
		}
		if err := tx.PutSyncClock("contact/acct-a", 7, "peer-y"); err != nil {
			return err
		}
		if at, origin, err := tx.SyncClock("contact/acct-a"); err != nil || at != 7 || origin != "peer-y" {
			t.Fatalf("SyncClock = %d %q %v", at, origin, err)
		}
		if err := tx.EnqueueDevice(DeviceItem{PeerID: "own-1", Own: true, MessageID: "s1", Payload: []byte("x"), NextAttempt: now}); err != nil {
			return err
		}
		return tx.EnqueueDevice(DeviceItem{ContactID: cid, PeerID: "own-1", Own: true, MessageID: "m1", Payload: []byte("y"), NextAttempt: now})
	})
	update(t, s, func(tx *Tx) error { return tx.DeleteContact(cid) })
	view(t, s, func(tx *Tx) error {
		items, err := tx.DeviceOutbox("own-1")
		if err != nil {
			return err
		}
		if len(items) != 1 || items[0].MessageID != "s1" || items[0].ContactID != 0 {
			t.Fatalf("own items after the contact's deletion: %+v", items)
		}
		return nil
	})
}
