package mesh

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/store"
)

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	key := make([]byte, store.KeySize)
	key[0] = 1
	st, err := store.Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func rowsIn(t *testing.T, st *store.Store) int {
	t.Helper()
	var items []store.CarriedItem
	if err := st.View(context.Background(), func(tx *store.Tx) (err error) { items, err = tx.CarriedItems(); return err }); err != nil {
		t.Fatal(err)
	}
	return len(items)
}

// TestCarrierRestart (issue 13): what a carrier carries is in its store as
// soon as the sync that brought it ends (no clean shutdown needed); a
// carrier started again on that store carries it, within the bounds of the
// new run, and delivers it.
func TestCarrierRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "carrier.db")
	st := openStore(t, path)
	net := newMemNet(t)
	alice := testMesh(t, net, "alice", Config{})
	kb := newKey(t)
	var envs [][]byte
	for i := range 6 {
		env := randomEnvelope(t, 200+i)
		envs = append(envs, env)
		if err := alice.Offer(mailbox.KeyID(kb), env, []string{"host-" + fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	c1, err := New(Config{Transport: net.node("carrier"), Store: st, SyncInterval: time.Hour, MinSyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c1.Start()
	net.link("alice", "carrier")
	eventually(t, "the carrier to store alice's envelopes", func() bool { return rowsIn(t, st) == 6 })
	net.unlink("alice", "carrier")
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// Again, with room for 4 from one neighbour only (a quarter of 16): 4
	// are carried, the rest deleted.
	st = openStore(t, path)
	defer st.Close()
	c2 := testMesh(t, net, "carrier", Config{Store: st, MaxItems: 16})
	if s := c2.Stats(); s.Carried != 4 {
		t.Fatalf("restarted carrier carries %d, want 4", s.Carried)
	}
	if n := rowsIn(t, st); n != 4 {
		t.Fatalf("%d rows left, want 4", n)
	}
	bob := testMesh(t, net, "bob", Config{})
	var in inbox
	bob.Own(kb, in.deliver)
	net.link("bob", "carrier")
	eventually(t, "bob to take the 4 and the carrier to drop them", func() bool {
		n := 0
		for _, e := range envs {
			n += in.count(e)
		}
		return n == 4 && c2.Stats().Carried == 0 && c2.Stats().Receipts == 4 && rowsIn(t, st) == 4 // the receipts
	})
}

// TestAcksSameMeeting (issue 13): what the recipient makes while taking
// its mail from a carrier (its acks, offered by its DeliverFunc, and its
// receipts) goes back to that carrier during the same meeting, not at a
// later round (here an hour later).
func TestAcksSameMeeting(t *testing.T) {
	net := newMemNet(t)
	slow := Config{SyncInterval: time.Hour, MinSyncInterval: time.Hour}
	alice := testMesh(t, net, "c-alice", slow)
	carrier := testMesh(t, net, "b-carrier", slow)
	bob := testMesh(t, net, "a-bob", slow) // the smaller id: bob starts the meeting's sync
	ka, kb := newKey(t), newKey(t)
	letter := randomEnvelope(t, 300)
	if err := alice.Offer(mailbox.KeyID(kb), letter, nil); err != nil {
		t.Fatal(err)
	}
	net.link("c-alice", "b-carrier")
	eventually(t, "the carrier to take alice's letter", func() bool { return carrier.Stats().Carried == 1 })
	net.unlink("c-alice", "b-carrier")

	ack := randomEnvelope(t, 100)
	bob.Own(kb, func(ctx context.Context, envs [][]byte) []bool {
		if err := bob.Offer(mailbox.KeyID(ka), ack, nil); err != nil {
			t.Error(err)
		}
		return []bool{true}
	})
	net.link("a-bob", "b-carrier")
	eventually(t, "the carrier to hold bob's ack and receipt", func() bool {
		return carrier.st.get(mailbox.HashEnvelope(ack)) != nil && carrier.st.get(receiptID(mailbox.HashEnvelope(letter))) != nil
	})
}
