package store

import (
	"testing"
	"time"
)

// TestDeviceItemQueued: a device copy keeps when it was queued (0010,
// ownqueue) across reschedules: given, else its first next attempt.
func TestDeviceItemQueued(t *testing.T) {
	s, _ := newTest(t)
	t0, t1 := time.Unix(1000, 0), time.Unix(2000, 0)
	update(t, s, func(tx *Tx) error {
		if err := tx.EnqueueDevice(DeviceItem{PeerID: "own-1", Own: true, MessageID: "a", Payload: []byte("x"), NextAttempt: t0}); err != nil {
			return err
		}
		if err := tx.EnqueueDevice(DeviceItem{PeerID: "own-1", Own: true, MessageID: "b", Payload: []byte("y"), NextAttempt: t1, Queued: t0}); err != nil {
			return err
		}
		return tx.RescheduleDevice("own-1", 3, t1.Add(time.Hour), "offline")
	})
	view(t, s, func(tx *Tx) error {
		items, err := tx.DeviceOutbox("own-1")
		if err != nil {
			return err
		}
		if len(items) != 2 {
			t.Fatalf("%d items, want 2", len(items))
		}
		for _, it := range items {
			if !it.Queued.Equal(t0) || it.Attempts != 3 {
				t.Errorf("item %s: queued %v, attempts %d; want %v, 3", it.MessageID, it.Queued, it.Attempts, t0)
			}
		}
		return nil
	})
}
