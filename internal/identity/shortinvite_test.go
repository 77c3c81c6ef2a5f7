package identity

import (
	"bytes"
	"crypto/rand"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// A full short invite: four entry points as a node listening on IPv4 TCP,
// QUIC and WebSocket and IPv6 TCP would put in (binary multiaddrs).
func sampleShortInvite(t testing.TB) *ShortInvite {
	t.Helper()
	id, _, _ := newCard(t)
	s := &ShortInvite{
		AccountKey: id.Public().SigningKey(),
		Secret:     bytes.Repeat([]byte{0xa5}, ShortSecretSize),
		DeviceKey:  bytes.Repeat([]byte{0x5a}, ShortDeviceKeySize),
		Addrs: [][]byte{
			{0x04, 203, 0, 113, 7, 0x06, 0x01, 0xbb},                   // /ip4/203.0.113.7/tcp/443
			{0x04, 203, 0, 113, 7, 0x91, 0x02, 0x01, 0xbb, 0xcc, 0x03}, // /ip4/…/udp/443/quic-v1
			{0x04, 198, 51, 100, 9, 0x06, 0x1f, 0x90, 0xdd, 0x03},      // /ip4/…/tcp/8080/ws
		},
	}
	return s
}

func TestShortInviteRoundTrip(t *testing.T) {
	s := sampleShortInvite(t)
	link, err := EncodeShortInvite(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(link) > MaxShortInviteLen || !strings.HasPrefix(link, InviteScheme) || strings.ToLower(link) != link {
		t.Fatalf("link %q (%d characters)", link, len(link))
	}
	if !IsShortInvite(link) {
		t.Fatal("IsShortInvite: false for a short invite")
	}
	t.Logf("short invite with %d entry points: %d characters", len(s.Addrs), len(link))
	for _, form := range []string{link, strings.ToUpper(link), ShortInviteQRText(link), link[:40] + "\n  " + link[40:] + " "} {
		got, err := ParseShortInvite(form)
		if err != nil {
			t.Fatalf("ParseShortInvite(%q): %v", form, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
		}
	}
	if got, _ := ParseShortInvite(link); got.AccountID() != AccountIDFromKey(s.AccountKey) {
		t.Fatal("AccountID")
	}
}

func TestShortInviteBadInput(t *testing.T) {
	s := sampleShortInvite(t)
	link, err := EncodeShortInvite(s)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"empty":        "samizdat:",
		"not base32":   "samizdat:hello-world",
		"truncated":    link[:len(link)-7],
		"one cut off":  link[:len(link)-1],
		"too long":     link + strings.Repeat("a", MaxShortInviteLen),
		"wrong scheme": "http:" + link[len(InviteScheme):],
	}
	// Every single-character change is caught (checksum or encoding).
	alphabet := "abcdefghijklmnopqrstuvwxyz234567"
	for i := len(InviteScheme); i < len(link); i++ {
		c := alphabet[(strings.IndexByte(alphabet, link[i])+1)%len(alphabet)]
		cases["typo at "+string(rune('0'+i%10))+"/"+link[i:i+1]+string(c)] = link[:i] + string(c) + link[i+1:]
		if _, err := ParseShortInvite(link[:i] + string(c) + link[i+1:]); err == nil {
			t.Fatalf("typo at %d accepted", i)
		}
	}
	for name, in := range cases {
		if _, err := ParseShortInvite(in); !errors.Is(err, ErrBadInvite) {
			t.Errorf("%s: err = %v, want ErrBadInvite", name, err)
		}
	}
	// A newer version is refused by name, not as damage.
	raw, _ := b32.DecodeString(strings.ToUpper(link[len(InviteScheme):]))
	raw[0] = 2
	body := raw[:len(raw)-shortChecksumSize]
	v2 := InviteScheme + strings.ToLower(b32.EncodeToString(append(body, shortChecksum(body)...)))
	if _, err := ParseShortInvite(v2); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("version 2: %v", err)
	}
	// Encoding refuses what does not fit.
	s.Addrs = append(s.Addrs, bytes.Repeat([]byte{4}, MaxShortEntrySize))
	if _, err := EncodeShortInvite(s); !errors.Is(err, ErrShortInviteTooLong) {
		t.Fatalf("oversized: %v", err)
	}
	s.Addrs = [][]byte{make([]byte, MaxShortEntrySize+1)}
	if _, err := EncodeShortInvite(s); !errors.Is(err, ErrBadInvite) {
		t.Fatalf("entry too long: %v", err)
	}
}

func TestIsShortInvite(t *testing.T) {
	_, _, signed := newCard(t)
	long, err := EncodeInvite(signed, nil)
	if err != nil {
		t.Fatal(err)
	}
	short, err := EncodeShortInvite(sampleShortInvite(t))
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]bool{
		long: false, short: true, strings.ToUpper(short): true, " " + short + "\n": true,
		"samizdat:channel/abc": false, "https://example.org": false, "": false,
		InviteScheme + AccountIDFromKey(sampleShortInvite(t).AccountKey): false, // a bare account id
	} {
		if got := IsShortInvite(in); got != want {
			t.Errorf("IsShortInvite(%.40q…) = %v, want %v", in, got, want)
		}
	}
}

// TestShortInviteQRVersion measures the QR code of a full-size short
// invite (MaxShortInviteLen characters): at most version 10 is the goal
// (57×57 modules, scans from a phone screen); the upper-case form uses
// QR's alphanumeric mode and comes out smaller than the lower-case one.
func TestShortInviteQRVersion(t *testing.T) {
	s := sampleShortInvite(t)
	var link string
	for {
		l, err := EncodeShortInvite(s)
		if errors.Is(err, ErrShortInviteTooLong) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		link = l
		s.Addrs = append(s.Addrs, []byte{0x04, 127, 0, 0, 1, 0x06, 0x1f, 0x90})
	}
	if len(link) < MaxShortInviteLen-10 {
		t.Fatalf("the fullest short invite has only %d characters", len(link))
	}
	upper, err := QRVersion(ShortInviteQRText(link))
	if err != nil {
		t.Fatal(err)
	}
	lower, err := QRVersion(link)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("short invite of %d characters: QR version %d upper case (alphanumeric), %d lower case", len(link), upper, lower)
	if upper > 10 || upper >= lower {
		t.Fatalf("QR version %d (upper case) / %d (lower case): want ≤ 10 and smaller in upper case", upper, lower)
	}
	_, _, signed := newCard(t)
	long, _ := EncodeInvite(signed, nil)
	v, _ := QRVersion(long)
	t.Logf("long invite of %d characters: QR version %d", len(long), v)
}

func FuzzParseShortInvite(f *testing.F) {
	link, err := EncodeShortInvite(sampleShortInvite(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(link)
	f.Add(strings.ToUpper(link))
	f.Add("samizdat:")
	f.Add(link[:len(link)/2])
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseShortInvite(s)
		if err != nil {
			if !errors.Is(err, ErrBadInvite) {
				t.Fatalf("error %v does not wrap ErrBadInvite", err)
			}
			return
		}
		// Parse → encode gives the canonical link back.
		out, err := EncodeShortInvite(inv)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if want := strings.ToLower(stripSpace(s)); out != want {
			t.Fatalf("round trip: %q → %q", want, out)
		}
		again, err := ParseShortInvite(out)
		if err != nil || !reflect.DeepEqual(again, inv) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func FuzzShortInviteEncode(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, 16), make([]byte, 32), []byte{4, 127, 0, 0, 1, 6, 0, 80}, uint8(8))
	f.Fuzz(func(t *testing.T, acct, secret, dev, addrs []byte, cut uint8) {
		s := &ShortInvite{AccountKey: acct, Secret: secret, DeviceKey: dev}
		for n := int(cut%MaxShortEntrySize) + 1; len(addrs) > 0; addrs = addrs[min(n, len(addrs)):] {
			s.Addrs = append(s.Addrs, addrs[:min(n, len(addrs))])
		}
		link, err := EncodeShortInvite(s)
		if err != nil {
			return
		}
		got, err := ParseShortInvite(link)
		if err != nil {
			t.Fatalf("parse of an encoded invite: %v", err)
		}
		if !bytes.Equal(got.AccountKey, acct) || !bytes.Equal(got.Secret, secret) || !bytes.Equal(got.DeviceKey, dev) || !reflect.DeepEqual(got.Addrs, s.Addrs) {
			t.Fatalf("round trip: got %+v want %+v", got, s)
		}
	})
}

func TestCardRequestProof(t *testing.T) {
	secret := make([]byte, ShortSecretSize)
	rand.Read(secret)
	p := CardRequestProof(secret, "A", "B")
	if len(p) != CardRequestProofSize {
		t.Fatalf("proof of %d bytes", len(p))
	}
	other := bytes.Clone(secret)
	other[0] ^= 1
	for name, q := range map[string][]byte{
		"swapped peers": CardRequestProof(secret, "B", "A"),
		"other secret":  CardRequestProof(other, "A", "B"),
		"ambiguous":     CardRequestProof(secret, "A\x00", "B"),
	} {
		if bytes.Equal(p, q) {
			t.Errorf("%s: same proof", name)
		}
	}
	if !bytes.Equal(p, CardRequestProof(secret, "A", "B")) {
		t.Fatal("not deterministic")
	}
}
