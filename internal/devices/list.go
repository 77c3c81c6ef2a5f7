package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
)

// The account's device list is one small record (a handful of devices),
// read and written whole in a store blob; every change raises its version,
// which goes in the card (identity.Card.DeviceVersion).

// blobList names the store blob holding the device list.
const blobList = "devices.list"

// Errors about the device list.
var (
	// ErrUnknownDevice is returned for a device id that is not in the list.
	ErrUnknownDevice = errors.New("no such device (see samizdat devices)")
	// ErrAmbiguousDevice is returned for a part of a device id that
	// matches more than one device.
	ErrAmbiguousDevice = errors.New("that part of an id names more than one device: give more of it (its end is best)")
	// ErrRevokeSelf is returned when a device is asked to revoke itself:
	// revoke it from another device.
	ErrRevokeSelf = errors.New("a device cannot revoke itself: revoke it from another device of the account")
	// ErrTooManyDevices is returned when linking would pass
	// identity.MaxDevices.
	ErrTooManyDevices = errors.New("too many devices on this account: revoke one first")
	// ErrRevoked is returned when a revoked device tries to link again.
	ErrRevoked = errors.New("this device was revoked: it cannot be linked again (start it afresh)")
)

// Entry is one device of the account.
type Entry struct {
	Device    identity.Device `json:"device"`
	AddedAt   time.Time       `json:"addedAt"`
	LastSeen  time.Time       `json:"lastSeen,omitzero"`
	RevokedAt time.Time       `json:"revokedAt,omitzero"`
}

// Revoked reports whether the device was revoked.
func (e *Entry) Revoked() bool { return !e.RevokedAt.IsZero() }

// List is the account's device list.
type List struct {
	Version uint64  `json:"version"`
	Entries []Entry `json:"entries"`
}

// Load reads the device list (empty, version 0, before any linking).
func Load(tx *store.Tx) (*List, error) {
	b, err := tx.Blob(blobList)
	if errors.Is(err, store.ErrNotFound) {
		return &List{}, nil
	} else if err != nil {
		return nil, err
	}
	var l List
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("devices: stored list: %w", err)
	}
	return &l, nil
}

// Save stores the device list.
func Save(tx *store.Tx, l *List) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return tx.PutBlob(blobList, b)
}

// Find returns the entry of a device (by peer id, or a unique prefix or
// suffix of at least 6 characters), or nil.
func (l *List) Find(ref string) *Entry {
	e, _ := l.find(ref)
	return e
}

// find is Find, and whether ref matched several devices (every peer id
// of an Ed25519 key starts with "12D3KooW": a prefix must be longer).
func (l *List) find(ref string) (_ *Entry, ambiguous bool) {
	var found *Entry
	for i := range l.Entries {
		id := l.Entries[i].Device.PeerID
		if id == ref {
			return &l.Entries[i], false
		}
		if len(ref) >= 6 && (len(id) > len(ref)) && (id[:len(ref)] == ref || id[len(id)-len(ref):] == ref) {
			if found != nil {
				return nil, true
			}
			found = &l.Entries[i]
		}
	}
	return found, false
}

// Active returns the devices not revoked, in the order they were linked.
func (l *List) Active() []identity.Device {
	var out []identity.Device
	for _, e := range l.Entries {
		if !e.Revoked() {
			out = append(out, e.Device)
		}
	}
	return out
}

// IsActive reports whether peer is a device of the account not revoked.
func (l *List) IsActive(peer string) bool {
	return slices.ContainsFunc(l.Entries, func(e Entry) bool { return e.Device.PeerID == peer && !e.Revoked() })
}

// Ensure adds this device to an empty list (the first device, before it
// links another), or refreshes its entry (addresses, name), without
// raising the version.
func (l *List) Ensure(self identity.Device, now time.Time) {
	if e := l.Find(self.PeerID); e != nil && e.Device.PeerID == self.PeerID {
		e.Device, e.LastSeen = self, now
		return
	}
	l.Entries = append(l.Entries, Entry{Device: self, AddedAt: now, LastSeen: now})
}

// Add links a new device: the version goes up by one.
func (l *List) Add(d identity.Device, now time.Time) error {
	if e := l.Find(d.PeerID); e != nil && e.Device.PeerID == d.PeerID {
		if e.Revoked() {
			return ErrRevoked
		}
		e.Device, e.LastSeen = d, now
		l.Version++
		return nil
	}
	if len(l.Active()) >= identity.MaxDevices {
		return ErrTooManyDevices
	}
	l.Entries = append(l.Entries, Entry{Device: d, AddedAt: now, LastSeen: now})
	l.Version++
	return nil
}

// Revoke marks a device revoked (self is this device's peer id): the
// version goes up by one.
func (l *List) Revoke(ref, self string, now time.Time) (*Entry, error) {
	e, ambiguous := l.find(ref)
	if ambiguous {
		return nil, fmt.Errorf("%w: %q", ErrAmbiguousDevice, ref)
	}
	if e == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, ref)
	}
	if e.Device.PeerID == self {
		return nil, ErrRevokeSelf
	}
	if e.Revoked() {
		return e, nil
	}
	e.RevokedAt = now
	l.Version++
	return e, nil
}

// Adopt takes a device list learnt from another device of the account (at
// linking, or from its card) if it is newer than ours: the entries it
// lists are active, ours that it does not list are revoked.
func (l *List) Adopt(version uint64, devs []identity.Device, now time.Time) bool {
	if version <= l.Version && len(l.Entries) > 0 {
		return false
	}
	listed := map[string]bool{}
	for _, d := range devs {
		listed[d.PeerID] = true
		if e := l.Find(d.PeerID); e != nil && e.Device.PeerID == d.PeerID {
			e.Device, e.RevokedAt = d, time.Time{}
			continue
		}
		l.Entries = append(l.Entries, Entry{Device: d, AddedAt: now})
	}
	for i := range l.Entries {
		if !listed[l.Entries[i].Device.PeerID] && !l.Entries[i].Revoked() {
			l.Entries[i].RevokedAt = now
		}
	}
	l.Version = version
	return true
}
