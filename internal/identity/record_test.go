package identity

import (
	"bytes"
	"errors"
	"testing"
)

func TestCardRecord(t *testing.T) {
	id, c, signed := newCard(t)
	acct := AccountID(id.Public())
	rec, err := SealCardRecord(acct, CardRecordVersion(c), signed)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != len(signed)+CardRecordOverhead {
		t.Fatalf("record of %d bytes for a %d-byte card", len(rec), len(signed))
	}
	if bytes.Contains(rec, []byte("Алиса")) || bytes.Contains(rec, id.Public().SigningKey()) || bytes.Contains(rec, []byte(acct)) {
		t.Fatal("the record shows the card in the clear")
	}
	got, raw, err := OpenCardRecord(acct, rec)
	if err != nil || got.Serial != c.Serial || !bytes.Equal(raw, signed) {
		t.Fatalf("OpenCardRecord = %v, %v", got, err)
	}
	if n1, n2 := CardRecordName(acct), CardRecordName(acct+"x"); n1 == n2 || len(n1) != 64 {
		t.Fatalf("names %q %q", n1, n2)
	}
	// A device's own record has a name of its own, per device.
	d1, d2 := DeviceCardRecordName(acct, "peer1"), DeviceCardRecordName(acct, "peer2")
	if d1 == d2 || d1 == CardRecordName(acct) || len(d1) != 64 || DeviceCardRecordName(acct+"x", "peer1") == d1 {
		t.Fatalf("device record names %q %q", d1, d2)
	}

	other, _, otherSigned := newCard(t)
	otherAcct := AccountID(other.Public())
	bad := map[string][]byte{"short": rec[:10]}
	flip := bytes.Clone(rec)
	flip[len(flip)-1] ^= 1
	bad["tampered"] = flip
	lie := bytes.Clone(rec)
	lie[7]++ // claims another serial: the ad no longer matches
	bad["version lie"] = lie
	// Someone who knows acct writes another account's card under its name.
	if forged, err := SealCardRecord(acct, CardRecordVersion(c), otherSigned); err == nil {
		bad["another account's card"] = forged
	}
	// The right card, claiming a higher serial than it has.
	if higher, err := SealCardRecord(acct, CardRecordVersion(c)+1, signed); err == nil {
		bad["serial mismatch"] = higher
	}
	for name, r := range bad {
		if _, _, err := OpenCardRecord(acct, r); !errors.Is(err, ErrBadCardRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := OpenCardRecord(otherAcct, rec); !errors.Is(err, ErrBadCardRecord) {
		t.Errorf("opened with another account id: %v", err)
	}
}

func FuzzOpenCardRecord(f *testing.F) {
	id, c, signed := newCard(f)
	acct := AccountID(id.Public())
	rec, _ := SealCardRecord(acct, CardRecordVersion(c), signed)
	f.Add(rec)
	f.Fuzz(func(t *testing.T, b []byte) {
		card, _, err := OpenCardRecord(acct, b)
		if err == nil && card.AccountID() != acct {
			t.Fatal("accepted another account's card")
		}
	})
}
