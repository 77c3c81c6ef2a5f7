package identity

import (
	"encoding/binary"
	"testing"
	"time"
)

// TestCardRecordVersionOrder (issue 17): a card with a newer device list
// has the greater record version whatever the serials (each device signs
// with its own clock), a later serial wins under the same list, any record
// in this layout beats one from before it (the bare serial), and a record
// whose version does not match its card is refused while the old layout
// still opens.
func TestCardRecordVersionOrder(t *testing.T) {
	id, c, _ := newCard(t)
	acct := AccountID(id.Public())
	at := func(dv uint64, serial time.Time) (*Card, []byte) {
		cc := *c
		cc.DeviceVersion, cc.Serial = dv, uint64(serial.UnixNano())
		signed, err := SignCard(id, &cc)
		if err != nil {
			t.Fatal(err)
		}
		return &cc, signed
	}
	now := time.Unix(1_800_000_000, 0)
	laptop, laptopSigned := at(2, now)              // revoked the phone
	phone, phoneSigned := at(1, now.Add(time.Hour)) // still running, its clock later
	later, _ := at(2, now.Add(time.Second))         // the laptop again
	if CardRecordVersion(phone) >= CardRecordVersion(laptop) {
		t.Fatalf("the older list wins: %x >= %x", CardRecordVersion(phone), CardRecordVersion(laptop))
	}
	if CardRecordVersion(later) <= CardRecordVersion(laptop) {
		t.Fatal("a later card under the same list does not win")
	}
	if legacy := phone.Serial; legacy >= CardRecordVersion(laptop) {
		t.Fatal("a record in the old layout beats the new one")
	}
	for _, tc := range []struct {
		name    string
		version uint64
		signed  []byte
		ok      bool
	}{
		{"laptop", CardRecordVersion(laptop), laptopSigned, true},
		{"legacy", phone.Serial, phoneSigned, true},
		{"phone claims the laptop's version", CardRecordVersion(laptop), phoneSigned, false},
		{"phone claims a newer list", CardRecordVersion(phone) + 1<<42, phoneSigned, false},
	} {
		rec, err := SealCardRecord(acct, tc.version, tc.signed)
		if err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint64(rec) != tc.version {
			t.Fatalf("%s: record carries %x", tc.name, binary.BigEndian.Uint64(rec))
		}
		_, _, err = OpenCardRecord(acct, rec)
		if (err == nil) != tc.ok {
			t.Errorf("%s: OpenCardRecord = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
