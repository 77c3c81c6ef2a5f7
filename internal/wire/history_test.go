package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

func TestParseHistoryOffer(t *testing.T) {
	id := bytes.Repeat([]byte{7}, MessageIDSize)
	for name, ok := range map[string]*wirepb.HistoryOffer{
		"offer": {TransferId: id, Manifest: []byte{1, 2}, Messages: 3},
		"done":  {TransferId: id, Done: true},
	} {
		b := Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_History{History: ok}})
		if p, err := ParsePayload(b); err != nil || p.GetHistory() == nil {
			t.Errorf("%s: ParsePayload = %v, %v", name, p, err)
		}
	}
	for name, bad := range map[string]*wirepb.HistoryOffer{
		"empty":        {},
		"short id":     {TransferId: id[:3], Manifest: []byte{1}},
		"no manifest":  {TransferId: id},
		"big error":    {TransferId: id, Done: true, Error: strings.Repeat("x", 201)},
		"big manifest": {TransferId: id, Manifest: make([]byte, MaxAttachmentSize+1)},
	} {
		b := Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_History{History: bad}})
		if _, err := ParsePayload(b); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseHistoryOffer(f *testing.F) {
	id := bytes.Repeat([]byte{7}, MessageIDSize)
	fuzzDecoder(f, [][]byte{
		Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_History{History: &wirepb.HistoryOffer{TransferId: id, Manifest: []byte{1}}}}),
	}, ParsePayload)
}
