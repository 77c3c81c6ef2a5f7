package identity

import (
	"errors"
	"reflect"
	"testing"
)

// TestCardCacheCopies checks that a card served from the cache is the
// card parsed the first time, that changing what one caller got does not
// reach the next caller, and that a card whose bytes differ by one bit is
// still verified (and refused) rather than served from the cache.
func TestCardCacheCopies(t *testing.T) {
	_, _, signed := newCard(t)
	first, err := ParseSignedCard(signed)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseSignedCard(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, want) {
		t.Fatal("the cached card differs from the parsed one")
	}
	// Scribble over everything the first caller holds.
	first.Name = "changed"
	if len(first.Devices) > 0 {
		first.Devices[0].PeerID = "changed"
		if len(first.Devices[0].Addrs) > 0 {
			first.Devices[0].Addrs[0] = "changed"
		}
	}
	if len(first.Mailboxes) > 0 {
		first.Mailboxes[0].ID[0] ^= 1
	}
	if first.Bundle != nil {
		first.Bundle.SignedPrekeyID++
		if len(first.Bundle.OneTimePrekeys) > 0 {
			first.Bundle.OneTimePrekeys[0].ID++
		}
	}
	first.Devices = append(first.Devices, Device{PeerID: "extra"})
	again, err := ParseSignedCard(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatal("a change to a returned card reached the cache")
	}
	bad := append([]byte(nil), signed...)
	bad[len(bad)-1] ^= 1 // inside the signature
	if _, err := ParseSignedCard(bad); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadCard) {
		t.Fatalf("a card with a flipped signature bit: %v", err)
	}
}
