package messenger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/samizdat-im/samizdat/internal/store"
)

// Renaming and deleting contacts (issue 17: both follow on the account's
// other devices, devsync.go).

// ErrBadContactName is returned by RenameContact for a name that is
// empty, too long or on several lines.
var ErrBadContactName = errors.New("bad contact name")

// RenameContact renames a contact (by name, id or account id); the new
// name must be free.
func (m *Messenger) RenameContact(ctx context.Context, ref, name string) (ContactInfo, error) {
	name = strings.TrimSpace(name)
	if err := validName(name); err != nil {
		return ContactInfo{}, fmt.Errorf("%w: %v", ErrBadContactName, err)
	}
	if name == "" {
		return ContactInfo{}, fmt.Errorf("%w: a contact needs a name", ErrBadContactName)
	}
	var out *store.Contact
	err := m.st.Update(ctx, m.thenSyncContact(&out, func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		if other, err := tx.ContactByName(name); err == nil && other.ID != c.ID {
			return fmt.Errorf("%w: the name %q is already used by another contact", store.ErrExists, name)
		}
		c.Name = name
		out = c
		return tx.UpdateContact(c)
	}))
	if err != nil {
		return ContactInfo{}, err
	}
	m.syncWake()
	m.emit(Event{Type: EventContact, ContactID: out.ID})
	return m.contactInfo(out), nil
}

// DeleteContact deletes a contact (by name, id or account id) with its
// chat, here and on our other devices. Adding it again later needs its
// invite again.
func (m *Messenger) DeleteContact(ctx context.Context, ref string) error {
	var id int64
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		id = c.ID
		if err := m.deleteRequest(tx, c.ID); err != nil {
			return err
		}
		return m.syncContact(tx, c, true)
	})
	if err != nil {
		return err
	}
	m.forgetDevices()
	m.syncWake()
	m.emit(Event{Type: EventContact, ContactID: id, State: "deleted"})
	return nil
}
