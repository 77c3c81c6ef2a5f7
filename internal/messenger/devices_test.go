package messenger

import (
	"context"
	"errors"
	"testing"

	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
)

// TestCardRollbackRefused: once bob holds alice's card with device list
// version 1, an invite of hers from before (version 0) is refused, and
// her card keeps its version; a newer card is taken.
func TestCardRollbackRefused(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	ctx := context.Background()
	oldLink, err := alice.m.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	self, err := alice.m.OwnDevice(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A device list change (as a revocation makes): version 1.
	err = alice.m.st.Update(ctx, func(tx *store.Tx) error {
		l, err := devices.Load(tx)
		if err != nil {
			return err
		}
		l.Ensure(self, alice.m.now())
		l.Version++
		return devices.Save(tx, l)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.m.DevicesChanged(ctx); err != nil {
		t.Fatal(err)
	}
	newLink, err := alice.m.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inv, err := identity.ParseInvite(newLink); err != nil || inv.Card.DeviceVersion != 1 {
		t.Fatalf("new invite: %v, version %+v", err, inv)
	}
	if _, err := bob.m.AddContact(ctx, newLink, ""); err != nil {
		t.Fatal(err)
	}
	_, err = bob.m.AddContact(ctx, oldLink, "")
	if !errors.Is(err, identity.ErrCardRollback) || !errors.Is(err, identity.ErrBadInvite) {
		t.Fatalf("an older invite: %v", err)
	}
	var held *identity.Card
	_ = bob.m.st.View(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(alice.m.AccountID())
		if err == nil {
			held, err = identity.ParseSignedCard(c.Card)
		}
		return err
	})
	if held == nil || held.DeviceVersion != 1 {
		t.Fatalf("bob holds %+v", held)
	}
	// The same invite again is fine (same version).
	if _, err := bob.m.AddContact(ctx, newLink, ""); err != nil {
		t.Fatalf("the same invite again: %v", err)
	}
}
