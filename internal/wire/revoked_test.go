package wire

import (
	"errors"
	"testing"

	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// TestParseRevocationNotice: a notice needs a list (at most MaxCardSize)
// and a 64-byte signature; anything else is malformed.
func TestParseRevocationNotice(t *testing.T) {
	ok := Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Revoked{Revoked: &wirepb.RevocationNotice{List: []byte("{}"), Signature: make([]byte, 64)}}})
	if p, err := ParsePayload(ok); err != nil || string(p.GetRevoked().List) != "{}" {
		t.Fatalf("ParsePayload(revocation notice) = %v, %v", p, err)
	}
	for name, n := range map[string]*wirepb.RevocationNotice{
		"empty":          {},
		"no list":        {Signature: make([]byte, 64)},
		"short sig":      {List: []byte("{}"), Signature: make([]byte, 63)},
		"oversized list": {List: make([]byte, MaxCardSize+1), Signature: make([]byte, 64)},
	} {
		if _, err := ParsePayload(Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Revoked{Revoked: n}})); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
