package wire

import "github.com/samizdat-im/samizdat/internal/wire/wirepb"

// Bounds of a DeviceSync (Payload.sync, issue 17).
const (
	// MaxSyncSettings bounds the settings JSON a sync carries.
	MaxSyncSettings = 128 << 10
	// MaxSyncDevices bounds a synced device list (identity.MaxDevices is
	// far lower; revoked entries stay listed).
	MaxSyncDevices = 64
	// MaxSyncOrigin bounds the origin (a peer id).
	MaxSyncOrigin = 128
)

// checkDeviceSync checks the sizes and the one item of a DeviceSync.
func checkDeviceSync(s *wirepb.DeviceSync) error {
	if s == nil || s.AtUnixMs <= 0 || s.Origin == "" || len(s.Origin) > MaxSyncOrigin {
		return ErrMalformed
	}
	switch it := s.Item.(type) {
	case *wirepb.DeviceSync_Contact:
		c := it.Contact
		if c == nil || c.Account == "" || len(c.Account) > 128 || len(c.Card) > MaxCardSize || len(c.Name) > 200 ||
			(!c.Deleted && len(c.Card) == 0) {
			return ErrMalformed
		}
	case *wirepb.DeviceSync_Group:
		g := it.Group
		if g == nil || len(g.Id) != 32 || len(g.Secret) == 0 || len(g.Secret) > 64 || len(g.Name) > MaxGroupName ||
			len(g.Ops) > 4*MaxGroupMembers {
			return ErrMalformed
		}
	case *wirepb.DeviceSync_Channel:
		if _, err := ParseChannelInvite(it.Channel); err != nil {
			return err
		}
	case *wirepb.DeviceSync_Read:
		r := it.Read
		if r == nil || r.Account == "" || len(r.Account) > 128 || len(r.MessageIds) == 0 || len(r.MessageIds) > MaxReadIDs {
			return ErrMalformed
		}
		for _, id := range r.MessageIds {
			if len(id) != MessageIDSize {
				return ErrMalformed
			}
		}
	case *wirepb.DeviceSync_Settings:
		if len(it.Settings) == 0 || len(it.Settings) > MaxSyncSettings {
			return ErrMalformed
		}
	case *wirepb.DeviceSync_Devices:
		d := it.Devices
		if d == nil || len(d.Devices) == 0 || len(d.Devices) > MaxSyncDevices {
			return ErrMalformed
		}
		for _, e := range d.Devices {
			if e == nil || e.PeerId == "" || len(e.PeerId) > 128 || len(e.Name) > 200 || len(e.Addrs) > 32 {
				return ErrMalformed
			}
		}
	default:
		return ErrMalformed
	}
	return nil
}
