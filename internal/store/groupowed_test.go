package store

import (
	"bytes"
	"errors"
	"testing"
)

// TestGroupOwedKeys: a key owed is kept per group and member, replaced by
// a newer one, and forgotten once sent.
func TestGroupOwedKeys(t *testing.T) {
	s, _ := newTest(t)
	g1, g2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.GroupOwedKey(g1, "bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("nothing owed yet: %v", err)
		}
		for _, k := range []struct {
			g   []byte
			who string
			v   string
		}{{g1, "bob", "old"}, {g1, "bob", "new"}, {g1, "carol", "c"}, {g2, "bob", "other group"}} {
			if err := tx.PutGroupOwedKey(k.g, k.who, []byte(k.v)); err != nil {
				return err
			}
		}
		if v, err := tx.GroupOwedKey(g1, "bob"); err != nil || string(v) != "new" {
			t.Errorf("owed to bob: %q %v", v, err)
		}
		if err := tx.DeleteGroupOwedKey(g1, "bob"); err != nil {
			return err
		}
		if _, err := tx.GroupOwedKey(g1, "bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after sending: %v", err)
		}
		if v, err := tx.GroupOwedKey(g2, "bob"); err != nil || string(v) != "other group" {
			t.Errorf("the other group's: %q %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
