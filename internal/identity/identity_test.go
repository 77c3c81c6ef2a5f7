package identity

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
)

func newCard(t testing.TB) (*keys.Identity, *Card, []byte) {
	t.Helper()
	id, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := handshake.NewPrekeys(rand.Reader, id, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	c := &Card{
		Identity: id.Public(), Name: "Алиса", Bundle: pk.Bundle(false),
		Devices:  []Device{newDevice(t, id.Public())},
		IssuedAt: now, ExpiresAt: now.Add(DefaultCardLifetime), Serial: 7,
	}
	signed, err := SignCard(id, c)
	if err != nil {
		t.Fatal(err)
	}
	return id, c, signed
}

func TestAccountID(t *testing.T) {
	id, _, _ := newCard(t)
	acct := AccountID(id.Public())
	if len(acct) != AccountIDLen || strings.ToLower(acct) != acct {
		t.Fatalf("account id %q", acct)
	}
	pub, err := ParseAccountID("  " + strings.ToUpper(acct) + "\n")
	if err != nil || !bytes.Equal(pub, id.Public().SigningKey()) {
		t.Fatalf("ParseAccountID: %v", err)
	}
	// Every single-character typo is detected.
	alphabet := "abcdefghijklmnopqrstuvwxyz234567"
	for i := range acct {
		for _, r := range alphabet {
			if byte(r) == acct[i] {
				continue
			}
			typo := acct[:i] + string(r) + acct[i+1:]
			if _, err := ParseAccountID(typo); err == nil {
				t.Fatalf("typo at %d (%q) accepted", i, typo)
			}
		}
	}
	for _, bad := range []string{"", "abc", acct + "a", strings.Repeat("!", AccountIDLen)} {
		if _, err := ParseAccountID(bad); !errors.Is(err, ErrBadAccountID) {
			t.Errorf("ParseAccountID(%q) = %v", bad, err)
		}
	}
	typo := acct[:5] + "a" + acct[6:]
	if acct[5] == 'a' {
		typo = acct[:5] + "b" + acct[6:]
	}
	if _, err := ParseAccountID(typo); !errors.Is(err, ErrChecksum) {
		t.Errorf("typo: %v, want ErrChecksum", err)
	}
}

func TestCardRoundTrip(t *testing.T) {
	_, c, signed := newCard(t)
	got, err := ParseSignedCard(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Identity.Equal(c.Identity) || got.Name != c.Name || got.Serial != 7 || got.Devices[0].Addrs[0] != c.Devices[0].Addrs[0] ||
		!got.ExpiresAt.Equal(c.ExpiresAt) || got.Bundle == nil || got.AccountID() != AccountID(c.Identity) {
		t.Fatalf("round trip: %+v", got)
	}
	if got.Expired(c.IssuedAt) || !got.Expired(c.ExpiresAt.Add(time.Second)) {
		t.Fatal("expiry")
	}
}

func TestCardTamperingRejected(t *testing.T) {
	_, _, signed := newCard(t)
	for i := range signed {
		b := bytes.Clone(signed)
		b[i] ^= 0x01
		if _, err := ParseSignedCard(b); err == nil {
			t.Fatalf("card with byte %d flipped accepted", i)
		}
	}
	// A card signed by another identity than the one it names.
	other, _, _ := newCard(t)
	_, c, _ := newCard(t)
	if _, err := SignCard(other, c); !errors.Is(err, ErrBadCard) {
		t.Fatalf("signing someone else's card: %v", err)
	}
}

func TestInvite(t *testing.T) {
	_, c, signed := newCard(t)
	link, err := EncodeInvite(signed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, "samizdat:"+AccountID(c.Identity)+"?card=") {
		t.Fatalf("link %q", link)
	}
	// Line breaks from copy and paste are ignored.
	broken := link[:40] + "\n  " + link[40:100] + "\r\n" + link[100:]
	inv, err := ParseInvite(broken)
	if err != nil || inv.AccountID != AccountID(c.Identity) || inv.Card.Name != "Алиса" {
		t.Fatalf("ParseInvite: %v", err)
	}
	_, _, otherSigned := newCard(t)
	otherLink, _ := EncodeInvite(otherSigned, nil)
	_, card2, _ := strings.Cut(otherLink, "?card=")
	mismatch := link[:strings.Index(link, "?card=")] + "?card=" + card2
	for name, bad := range map[string]string{
		"empty": "", "scheme": "https://samizdat.example/x", "no card": "samizdat:" + AccountID(c.Identity),
		"cut": link[:len(link)-30], "bad id": "samizdat:abc?card=AAAA", "mismatch": mismatch,
		"huge": "samizdat:" + AccountID(c.Identity) + "?card=" + strings.Repeat("A", 100000),
	} {
		if _, err := ParseInvite(bad); !errors.Is(err, ErrBadInvite) {
			t.Errorf("%s: %v, want ErrBadInvite", name, err)
		}
	}
}

func TestSafetyNumber(t *testing.T) {
	a, _, _ := newCard(t)
	b, _, _ := newCard(t)
	ab, ba := SafetyNumber(a.Public(), b.Public()), SafetyNumber(b.Public(), a.Public())
	if ab != ba || len(strings.ReplaceAll(ab, " ", "")) != 60 || len(strings.Fields(ab)) != 12 {
		t.Fatalf("safety numbers %q / %q", ab, ba)
	}
}

func TestQR(t *testing.T) {
	_, _, signed := newCard(t)
	link, _ := EncodeInvite(signed, nil)
	var buf bytes.Buffer
	if err := WriteQR(&buf, link); err != nil {
		t.Fatalf("a real invite does not fit a QR code: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 20 || len([]rune(lines[0])) < 40 {
		t.Fatalf("QR code is %d lines", len(lines))
	}
	if png, err := QRPNG(link, 512); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("QRPNG: %v", err)
	}
}

func FuzzParseInvite(f *testing.F) {
	_, _, signed := newCard(f)
	link, _ := EncodeInvite(signed, nil)
	f.Add(link)
	f.Add("samizdat:")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInvite(s)
		if err != nil {
			return
		}
		again, err := EncodeInvite(inv.SignedCard, inv.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseInvite(again); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParseSignedCard(f *testing.F) {
	_, _, signed := newCard(f)
	f.Add(signed)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseSignedCard(b)
		if err != nil {
			return
		}
		if c.Identity.IsZero() {
			t.Fatal("accepted a card without identity")
		}
	})
}
