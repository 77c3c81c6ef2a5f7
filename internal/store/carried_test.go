package store

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestCarriedItems(t *testing.T) {
	s, path := newTest(t)
	exp := time.Unix(1_900_000_000, 0)
	env := CarriedItem{ID: []byte("id-1"), Mailbox: []byte("mb"), Hops: 7, Expires: exp, Arrived: 2, From: "peerA",
		Hosts: []string{"h1", "h2"}, Envelope: []byte("sealed")}
	rc := CarriedItem{ID: []byte("id-2"), Mailbox: []byte("mb"), Expires: exp, Arrived: 1,
		ReceiptHash: []byte("hash"), ReceiptKey: []byte("key"), ReceiptSig: []byte("sig")}
	update(t, s, func(tx *Tx) error {
		if err := tx.PutCarried(env); err != nil {
			return err
		}
		if err := tx.PutCarried(rc); err != nil {
			return err
		}
		return tx.PutCarried(env) // again: replaced, not doubled
	})
	s.Close()
	s = openTest(t, path)
	var got []CarriedItem
	view(t, s, func(tx *Tx) (err error) { got, err = tx.CarriedItems(); return err })
	if len(got) != 2 {
		t.Fatalf("%d items, want 2", len(got))
	}
	if g := got[0]; string(g.ID) != "id-2" || g.Envelope != nil || string(g.ReceiptSig) != "sig" || len(g.Hosts) != 0 {
		t.Errorf("receipt: %+v", g)
	}
	if g := got[1]; string(g.ID) != "id-1" || !bytes.Equal(g.Envelope, env.Envelope) || g.Hops != 7 || !g.Expires.Equal(exp) ||
		g.From != "peerA" || !slices.Equal(g.Hosts, env.Hosts) {
		t.Errorf("envelope: %+v", g)
	}
	update(t, s, func(tx *Tx) error { return tx.DeleteCarried([]byte("id-1")) })
	view(t, s, func(tx *Tx) (err error) { got, err = tx.CarriedItems(); return err })
	if len(got) != 1 {
		t.Fatalf("%d items after a delete, want 1", len(got))
	}
}

// TestFind: Find sees what the key holder can read, in any table,
// including the full-text index; it does not invent hits.
func TestFind(t *testing.T) {
	s, _ := newTest(t)
	c := addContact(t, s, "a", "A")
	update(t, s, func(tx *Tx) error {
		_, err := tx.InsertMessage(&Message{ID: "1", ContactID: c, Body: "the plaintext 7f3a at dawn"})
		return err
	})
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	found, err := s.Find(ctx, []byte("plaintext 7f3a"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(found, "messages.body") {
		t.Fatalf("found in %v, want messages.body among them", found)
	}
	if found, err := s.Find(ctx, []byte("not there 9b1c")); err != nil || len(found) != 0 {
		t.Fatalf("absent needle found in %v (%v)", found, err)
	}
}
