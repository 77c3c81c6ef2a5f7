package store

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestFanoutMigrationMovesSession: a contact's single session record (the
// schema before 0008) becomes the session of the device it was talking
// to, the contact's peer id, and reads back as the primary one.
func TestFanoutMigrationMovesSession(t *testing.T) {
	s, _ := newTest(t)
	cid := addContact(t, s, "acct-a", "alice")
	update(t, s, func(tx *Tx) error {
		c, err := tx.Contact(cid)
		if err != nil {
			return err
		}
		c.PeerID = "peer-a1"
		return tx.UpdateContact(c)
	})
	// Back to the schema of 0007, with one session in the old table.
	for _, q := range []string{
		`DROP TRIGGER contacts_device_sessions_ad`, `DROP TRIGGER contacts_device_outbox_ad`, `DROP TABLE sync_clock`, // 0009 (devsync)
		`DROP TABLE device_sessions`, `DROP TABLE device_outbox`, `DROP TABLE device_cards`,
		`CREATE TABLE sessions (contact_id INTEGER PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE, state BLOB NOT NULL) STRICT`,
		`INSERT INTO sessions (contact_id, state) VALUES (1, x'0102')`,
		`PRAGMA user_version = 7`,
	} {
		if _, err := s.w.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := migrate(ctx, s.w, migrations); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	view(t, s, func(tx *Tx) error {
		got, err := tx.DeviceSession(cid, "peer-a1")
		if err != nil || !bytes.Equal(got, []byte{1, 2}) {
			t.Fatalf("DeviceSession after migration = %x, %v", got, err)
		}
		if got, err := tx.Session(cid); err != nil || !bytes.Equal(got, []byte{1, 2}) {
			t.Fatalf("Session after migration = %x, %v", got, err)
		}
		return nil
	})
}

func TestDeviceSessionsAndOutbox(t *testing.T) {
	s, _ := newTest(t)
	cid := addContact(t, s, "acct-a", "alice")
	now := time.Unix(1000, 0)
	update(t, s, func(tx *Tx) error {
		c, _ := tx.Contact(cid)
		c.PeerID = "p1"
		if err := tx.UpdateContact(c); err != nil {
			return err
		}
		if err := tx.PutSession(cid, []byte("primary")); err != nil {
			return err
		}
		if err := tx.PutDeviceSession(cid, "p2", []byte("second")); err != nil {
			return err
		}
		if err := tx.PutDeviceSession(0, "own2", []byte("own")); err != nil {
			return err
		}
		if err := tx.PutDeviceCard(cid, "p2", []byte("card")); err != nil {
			return err
		}
		for _, it := range []DeviceItem{
			{ContactID: cid, PeerID: "p2", MessageID: "m1", Payload: []byte("x"), NextAttempt: now},
			{ContactID: cid, PeerID: "own2", Own: true, MessageID: "m1", Payload: []byte("y"), NextAttempt: now.Add(time.Hour)},
			{ContactID: cid, PeerID: "p2", MessageID: "m1", Payload: []byte("dup"), NextAttempt: now},
		} {
			if err := tx.EnqueueDevice(it); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx *Tx) error {
		if b, _ := tx.Session(cid); string(b) != "primary" {
			t.Fatalf("Session = %q", b)
		}
		if b, _ := tx.DeviceSession(cid, "p2"); string(b) != "second" {
			t.Fatalf("DeviceSession p2 = %q", b)
		}
		if b, _ := tx.DeviceCard(cid, "p2"); string(b) != "card" {
			t.Fatalf("DeviceCard p2 = %q", b)
		}
		peers, err := tx.DeviceSessionPeers(cid)
		if err != nil || len(peers) != 2 {
			t.Fatalf("DeviceSessionPeers = %v, %v", peers, err)
		}
		due, err := tx.DueDevicePeers(now)
		if err != nil || len(due) != 1 || due[0] != "p2" {
			t.Fatalf("DueDevicePeers = %v, %v", due, err)
		}
		items, err := tx.DeviceOutbox("own2")
		if err != nil || len(items) != 1 || !items[0].Own || string(items[0].Payload) != "y" {
			t.Fatalf("DeviceOutbox own2 = %+v, %v", items, err)
		}
		items, _ = tx.DeviceOutbox("p2")
		if len(items) != 1 || string(items[0].Payload) != "x" {
			t.Fatalf("a second copy for one device replaced the first: %+v", items)
		}
		return nil
	})
	update(t, s, func(tx *Tx) error {
		// One device's ack leaves the other's copy.
		if err := tx.DeleteDeviceItem("p2", cid, "m1"); err != nil {
			return err
		}
		if items, _ := tx.DeviceOutbox("own2"); len(items) != 1 {
			t.Fatalf("own2's copy went with p2's ack")
		}
		return tx.DeleteContact(cid)
	})
	view(t, s, func(tx *Tx) error {
		if _, err := tx.DeviceSession(cid, "p2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("session of a deleted contact's device: %v", err)
		}
		if _, err := tx.DeviceCard(cid, "p2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("card of a deleted contact's device: %v", err)
		}
		return nil
	})
}
