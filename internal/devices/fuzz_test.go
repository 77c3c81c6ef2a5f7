package devices

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// FuzzParseLink: any text either fails with an error or gives a link that
// encodes back to a code that parses to the same link.
func FuzzParseLink(f *testing.F) {
	d := newTestDevice(&testing.T{})
	p, _ := NewLink(rand.Reader, d.pub, []string{"/ip4/127.0.0.1/tcp/4001"}, now, DefaultLinkTTL)
	f.Add(p.String())
	f.Add(LinkScheme)
	f.Add("samizdat:abc")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLink(s, now)
		if err != nil {
			return
		}
		again, err := ParseLink(l.String(), now)
		if err != nil {
			t.Fatalf("re-encoded link does not parse: %v", err)
		}
		if !bytes.Equal(again.DeviceKey, l.DeviceKey) || !bytes.Equal(again.Secret, l.Secret) ||
			!bytes.Equal(again.Ephemeral.Bytes(), l.Ephemeral.Bytes()) || !again.Expires.Equal(l.Expires) || len(again.Addrs) != len(l.Addrs) {
			t.Fatalf("round trip changed the link: %+v → %+v", l, again)
		}
	})
}
