package devices

import (
	"slices"

	"github.com/samizdat-im/samizdat/internal/identity"
)

// Merge takes a device list held by another device of the account (sent
// with a sync, issue 17) into ours, so that every device of the account
// ends with the same list whatever order the lists arrive in:
//
//   - the entries are the union of both (a device linked on either side
//     is known on both);
//   - a device revoked on either side stays revoked (revocation is never
//     undone: a revoked device cannot be linked again), at the earlier
//     time;
//   - last seen is the later of the two;
//   - the version is the greater of the two if that side already held
//     the merged list, else one more than the greater (two devices that
//     each linked a device at version v both end at v+1 with the same
//     list, and a contact holding either card takes the merged one).
//
// origin is the device that sent the other list: its own entry (its
// addresses, which change as it restarts) is taken from it. Merge reports
// whether our list changed and whether the other side's differs
// from the result (then it should be told ours).
func (l *List) Merge(other *List, origin string) (changed, tellBack bool) {
	merged := l.clone()
	for _, o := range other.Entries {
		e := merged.Find(o.Device.PeerID)
		if e == nil || e.Device.PeerID != o.Device.PeerID {
			merged.Entries = append(merged.Entries, o)
			continue
		}
		if o.LastSeen.After(e.LastSeen) {
			e.LastSeen = o.LastSeen
		}
		if e.AddedAt.IsZero() || (!o.AddedAt.IsZero() && o.AddedAt.Before(e.AddedAt)) {
			e.AddedAt = o.AddedAt
		}
		if o.Revoked() && (!e.Revoked() || o.RevokedAt.Before(e.RevokedAt)) {
			e.RevokedAt = o.RevokedAt
		}
		if other.Version > l.Version || o.Device.PeerID == origin {
			// The newer list's certificate, addresses and name; the
			// sending device knows its own addresses best.
			e.Device = o.Device
		}
	}
	sameAsOurs, sameAsTheirs := merged.sameDevices(l), merged.sameDevices(other)
	switch {
	case sameAsOurs && sameAsTheirs:
		merged.Version = max(l.Version, other.Version)
	case sameAsTheirs && other.Version >= l.Version:
		merged.Version = other.Version
	case sameAsOurs && l.Version >= other.Version:
		merged.Version = l.Version
	default:
		merged.Version = max(l.Version, other.Version) + 1
	}
	changed = merged.Version != l.Version || !merged.sameEntries(l)
	tellBack = merged.Version != other.Version || !sameAsTheirs
	if changed {
		*l = *merged
	}
	return changed, tellBack
}

func (l *List) clone() *List {
	c := &List{Version: l.Version, Entries: slices.Clone(l.Entries)}
	for i := range c.Entries {
		c.Entries[i].Device.Addrs = slices.Clone(c.Entries[i].Device.Addrs)
	}
	return c
}

// sameDevices reports whether l and o list the same devices with the
// same revoked state (what the version covers).
func (l *List) sameDevices(o *List) bool {
	if len(l.Entries) != len(o.Entries) {
		return false
	}
	for _, e := range l.Entries {
		f := o.Find(e.Device.PeerID)
		if f == nil || f.Device.PeerID != e.Device.PeerID || f.Revoked() != e.Revoked() {
			return false
		}
	}
	return true
}

// sameEntries is sameDevices and the same times and device details.
func (l *List) sameEntries(o *List) bool {
	if !l.sameDevices(o) {
		return false
	}
	for _, e := range l.Entries {
		f := o.Find(e.Device.PeerID)
		if !f.LastSeen.Equal(e.LastSeen) || !f.AddedAt.Equal(e.AddedAt) || !f.RevokedAt.Equal(e.RevokedAt) ||
			!sameDevice(f.Device, e.Device) {
			return false
		}
	}
	return true
}

func sameDevice(a, b identity.Device) bool {
	return a.PeerID == b.PeerID && a.Name == b.Name && slices.Equal(a.Addrs, b.Addrs) &&
		string(a.Key) == string(b.Key) && string(a.Signature) == string(b.Signature)
}
