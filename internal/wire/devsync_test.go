package wire

import (
	"errors"
	"testing"

	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

func syncPayload(s *wirepb.DeviceSync) []byte {
	return Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Sync{Sync: s}})
}

// TestParseDeviceSync: each kind of change parses back; a change without
// time or origin, or with out-of-bounds contents, is malformed.
func TestParseDeviceSync(t *testing.T) {
	id := make([]byte, MessageIDSize)
	inv := Marshal(&wirepb.ChannelInvite{Version: Version, OwnerPub: make([]byte, 32), Name: "news"})
	ok := map[string]*wirepb.DeviceSync{
		"contact":  {Item: &wirepb.DeviceSync_Contact{Contact: &wirepb.SyncContactState{Account: "a", Card: []byte{1}, Name: "carol"}}},
		"deleted":  {Item: &wirepb.DeviceSync_Contact{Contact: &wirepb.SyncContactState{Account: "a", Deleted: true}}},
		"group":    {Item: &wirepb.DeviceSync_Group{Group: &wirepb.SyncGroupState{Id: make([]byte, 32), Secret: make([]byte, 32), Ops: [][]byte{{1}}}}},
		"channel":  {Item: &wirepb.DeviceSync_Channel{Channel: inv}},
		"read":     {Item: &wirepb.DeviceSync_Read{Read: &wirepb.SyncReadState{Account: "a", MessageIds: [][]byte{id}}}},
		"settings": {Item: &wirepb.DeviceSync_Settings{Settings: []byte(`{}`)}},
		"devices":  {Item: &wirepb.DeviceSync_Devices{Devices: &wirepb.SyncDeviceList{Version: 2, Devices: []*wirepb.SyncDevice{{PeerId: "p"}}}}},
	}
	for name, s := range ok {
		s.AtUnixMs, s.Origin = 1, "peer"
		p, err := ParsePayload(syncPayload(s))
		if err != nil || p.GetSync() == nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]*wirepb.DeviceSync{
		"no time":        {Origin: "p", Item: ok["read"].Item},
		"no origin":      {AtUnixMs: 1, Item: ok["read"].Item},
		"no item":        {AtUnixMs: 1, Origin: "p"},
		"contact card":   {AtUnixMs: 1, Origin: "p", Item: &wirepb.DeviceSync_Contact{Contact: &wirepb.SyncContactState{Account: "a"}}},
		"group id":       {AtUnixMs: 1, Origin: "p", Item: &wirepb.DeviceSync_Group{Group: &wirepb.SyncGroupState{Id: []byte{1}, Secret: []byte{1}}}},
		"channel":        {AtUnixMs: 1, Origin: "p", Item: &wirepb.DeviceSync_Channel{Channel: []byte{0xff}}},
		"read id":        {AtUnixMs: 1, Origin: "p", Item: &wirepb.DeviceSync_Read{Read: &wirepb.SyncReadState{Account: "a", MessageIds: [][]byte{{1}}}}},
		"empty settings": {AtUnixMs: 1, Origin: "p", Item: &wirepb.DeviceSync_Settings{}},
		"no devices":     {AtUnixMs: 1, Origin: "p", Item: &wirepb.DeviceSync_Devices{Devices: &wirepb.SyncDeviceList{Version: 1}}},
	}
	for name, s := range bad {
		if _, err := ParsePayload(syncPayload(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
