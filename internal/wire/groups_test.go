package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

func sampleOp(kind wirepb.GroupOp_Kind, parents ...[]byte) []byte {
	op := Marshal(&wirepb.GroupOp{Version: Version, GroupId: make([]byte, 32), Kind: kind, Depth: 1, Parents: parents})
	return Marshal(&wirepb.SignedGroupOp{Op: op, Signature: make([]byte, 64)})
}

func sampleAddMany(n int, name string) []byte {
	op := &wirepb.GroupOp{Version: Version, GroupId: make([]byte, 32), Kind: wirepb.GroupOp_KIND_ADD_MANY, Depth: 2, Parents: [][]byte{bytes.Repeat([]byte{1}, 32)}}
	for range n {
		op.Added = append(op.Added, &wirepb.AddedMember{Account: string(bytes.Repeat([]byte{'a'}, 58)), Name: name})
	}
	return Marshal(&wirepb.SignedGroupOp{Op: Marshal(op), Signature: make([]byte, 64)})
}

func TestParseGroupMessages(t *testing.T) {
	h := bytes.Repeat([]byte{1}, 32)
	for name, c := range map[string]struct {
		b   []byte
		err error
	}{
		"create":              {sampleOp(wirepb.GroupOp_KIND_CREATE), nil},
		"add":                 {sampleOp(wirepb.GroupOp_KIND_ADD, h), nil},
		"create with parents": {sampleOp(wirepb.GroupOp_KIND_CREATE, h), ErrMalformed},
		"add without parents": {sampleOp(wirepb.GroupOp_KIND_ADD), ErrMalformed},
		"short parent":        {sampleOp(wirepb.GroupOp_KIND_ADD, h[:5]), ErrMalformed},
		"garbage":             {[]byte{0xff, 0xff}, ErrMalformed},
		"short signature":     {Marshal(&wirepb.SignedGroupOp{Op: Marshal(&wirepb.GroupOp{Version: Version, GroupId: make([]byte, 32)}), Signature: []byte{1}}), ErrMalformed},
		"other version":       {Marshal(&wirepb.SignedGroupOp{Op: Marshal(&wirepb.GroupOp{Version: 2, GroupId: make([]byte, 32)}), Signature: make([]byte, 64)}), ErrVersion},
		"too large":           {make([]byte, MaxCardSize+8<<10), ErrTooLarge},
		// ADD_MANY: 1 to MaxAddBatch members, the largest fits the op limit.
		"add many":            {sampleAddMany(3, "bob"), nil},
		"add many, the most":  {sampleAddMany(MaxAddBatch, string(bytes.Repeat([]byte{'n'}, MaxAddedName))), nil},
		"add many, too many":  {sampleAddMany(MaxAddBatch+1, "x"), ErrMalformed},
		"add many, nobody":    {sampleOp(wirepb.GroupOp_KIND_ADD_MANY, h), ErrMalformed},
		"add many, long name": {sampleAddMany(1, string(bytes.Repeat([]byte{'n'}, MaxAddedName+1))), ErrMalformed},
	} {
		if _, _, err := ParseSignedGroupOp(c.b); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", name, err, c.err)
		}
	}
	if _, err := ParseChannelInvite(Marshal(&wirepb.ChannelInvite{Version: Version, OwnerPub: []byte{1}})); !errors.Is(err, ErrMalformed) {
		t.Errorf("short owner key: %v", err)
	}
	if _, err := ParseGroupEnvelope(Marshal(&wirepb.GroupEnvelope{Version: Version, Message: []byte{1}})); !errors.Is(err, ErrMalformed) {
		t.Errorf("envelope without sender: %v", err)
	}
	for name, c := range map[string]struct {
		device []byte
		err    error
	}{
		"no device (a node from before)": {nil, nil},
		"a device":                       {make([]byte, DeviceTagSize), nil},
		"a device tag too long":          {make([]byte, DeviceTagSize+1), ErrMalformed},
		"a device tag too short":         {make([]byte, DeviceTagSize-1), ErrMalformed},
	} {
		env := &wirepb.GroupEnvelope{Version: Version, Sender: "a", Message: []byte{1}, Device: c.device}
		if got, err := ParseGroupEnvelope(Marshal(env)); !errors.Is(err, c.err) || (err == nil && !bytes.Equal(got.Device, c.device)) {
			t.Errorf("envelope, %s: %v, want %v", name, err, c.err)
		}
		gcd := &wirepb.GroupControl{GroupId: make([]byte, 32), SenderKey: []byte{1}, Device: c.device}
		if _, err := ParsePayload(Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Group{Group: gcd}})); !errors.Is(err, c.err) {
			t.Errorf("group control, %s: %v, want %v", name, err, c.err)
		}
	}
	if _, err := ParseHistoryRequest(Marshal(&wirepb.HistoryRequest{Version: Version, Topic: "t"})); !errors.Is(err, ErrMalformed) {
		t.Errorf("request without limit: %v", err)
	}
	many := &wirepb.HistoryResponse{Version: Version, Items: make([][]byte, MaxHistoryItems+1)}
	if _, err := ParseHistoryResponse(Marshal(many)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many items: %v", err)
	}
	gc := &wirepb.GroupControl{GroupId: make([]byte, 32), Secret: []byte{1}}
	if _, err := ParsePayload(Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Group{Group: gc}})); !errors.Is(err, ErrMalformed) {
		t.Errorf("short secret: %v", err)
	}
	cards := &wirepb.GroupText{Version: Version, MessageId: make([]byte, MessageIDSize), Cards: make([][]byte, MaxAddBatch+1)}
	if _, err := ParseGroupText(Marshal(cards)); !errors.Is(err, ErrMalformed) {
		t.Errorf("too many cards: %v", err)
	}
	gc.Secret = make([]byte, 32)
	if _, err := ParsePayload(Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Group{Group: gc}})); err != nil {
		t.Errorf("group control: %v", err)
	}
}

func FuzzParseSignedGroupOp(f *testing.F) {
	f.Add(sampleOp(wirepb.GroupOp_KIND_CREATE))
	f.Add(sampleOp(wirepb.GroupOp_KIND_REMOVE, bytes.Repeat([]byte{1}, 32)))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, op, err := ParseSignedGroupOp(b)
		if err != nil {
			return
		}
		s2, op2, err := ParseSignedGroupOp(Marshal(s))
		if err != nil || s2 == nil || op2.Kind != op.Kind || !bytes.Equal(s2.Op, s.Op) {
			t.Fatalf("re-encoded op rejected or changed: %v", err)
		}
	})
}

func FuzzParseChannelInvite(f *testing.F) {
	seed := Marshal(&wirepb.ChannelInvite{Version: Version, OwnerPub: make([]byte, 32), Name: "alerts", Seeds: []string{"/ip4/127.0.0.1/tcp/1/p2p/x"}})
	fuzzDecoder(f, [][]byte{seed}, ParseChannelInvite)
}

func FuzzParseGroupEnvelope(f *testing.F) {
	fuzzDecoder(f, [][]byte{
		Marshal(&wirepb.GroupEnvelope{Version: Version, Sender: "a", Message: []byte{1}}),
		Marshal(&wirepb.GroupEnvelope{Version: Version, Sender: "a", Message: []byte{1}, Device: make([]byte, DeviceTagSize)}),
	}, ParseGroupEnvelope)
}

func FuzzParseGroupText(f *testing.F) {
	fuzzDecoder(f, [][]byte{Marshal(&wirepb.GroupText{Version: Version, MessageId: make([]byte, MessageIDSize), Body: "hi"})}, ParseGroupText)
}

func FuzzParseHistory(f *testing.F) {
	f.Add(Marshal(&wirepb.HistoryRequest{Version: Version, Topic: "t", Limit: 5}))
	f.Add(Marshal(&wirepb.HistoryResponse{Version: Version, Items: [][]byte{{1}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseHistoryRequest(b); err == nil {
			if _, err := ParseHistoryRequest(Marshal(r)); err != nil {
				t.Fatal(err)
			}
		}
		if r, err := ParseHistoryResponse(b); err == nil {
			if _, err := ParseHistoryResponse(Marshal(r)); err != nil {
				t.Fatal(err)
			}
		}
	})
}
