package identity

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Card records in the DHT (DESIGN §4): an account's signed card is
// published under a name derived from its account id and encrypted under
// a key derived from it too, so only someone who already knows the id can
// find or read it; the DHT's nodes see an opaque record. The record's
// version orders the cards (below), so the newest card wins.
//
//	name   = hex(SHA-256("samizdat/card-record/v1/name" || account id))
//	key    = HKDF-SHA-256(ikm = account id, info = "samizdat/card-record/v1/key")
//	record = version (8, big-endian) | nonce (24) | XChaCha20-Poly1305(key, nonce, signed card, ad = version)
//
// Whoever knows the account id can also write a record under that name,
// but not a card that verifies: readers check the signature and the
// account, so a forged record is ignored (it can hide the real one from
// the DHT's choice, not replace it; contacts then fall back on cards
// received in messages).
//
// The version (CardRecordVersion) puts the card's device-list version
// above its serial: the serials of cards that different devices of one
// account signed are not comparable (each device's clock), so a device
// that missed a change of the list — a revoked phone still running —
// must never beat a card with the newer list. Its top bit marks this
// layout; a record from before it carried the bare serial (< 2^63), and
// any record in this layout wins over it.
//
//	version = 1 (1 bit) | device-list version (21 bits, saturated) | serial in ms (42 bits: to 2109)

const (
	cardRecordNameInfo   = "samizdat/card-record/v1/name"
	deviceRecordNameInfo = "samizdat/card-record/v1/device"
	cardRecordKeyInfo    = "samizdat/card-record/v1/key"
	// CardRecordOverhead is what a record adds to the signed card.
	CardRecordOverhead = 8 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
)

// CardRecordVersion returns the version a record of card c carries.
func CardRecordVersion(c *Card) uint64 {
	const devBits, msBits = 21, 42
	dv := min(c.DeviceVersion, 1<<devBits-1)
	ms := c.Serial / 1e6 & (1<<msBits - 1)
	return 1<<63 | dv<<msBits | ms
}

// ErrBadCardRecord is returned by OpenCardRecord for a record that does
// not decrypt, or whose card is not the account's or not newer than its
// version says.
var ErrBadCardRecord = errors.New("invalid card record")

// CardRecordName returns the DHT name of an account's card record.
func CardRecordName(accountID string) string {
	h := sha256.Sum256([]byte(cardRecordNameInfo + accountID))
	return hex.EncodeToString(h[:])
}

// DeviceCardRecordName returns the DHT name of the own card of one device
// (peerID) of an account (issue 17): the card that device signed, listing
// itself first, with its prekeys and mailbox hosts. It is sealed and
// opened like the account's record (SealCardRecord, OpenCardRecord: under
// the key derived from the account id), so only who knows the account id
// can find or read it.
func DeviceCardRecordName(accountID, peerID string) string {
	h := sha256.Sum256([]byte(deviceRecordNameInfo + accountID + "/" + peerID))
	return hex.EncodeToString(h[:])
}

func cardRecordAEAD(accountID string) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(accountID), nil, cardRecordKeyInfo, chacha20poly1305.KeySize)
}

// SealCardRecord encrypts a signed card (of accountID) as a DHT record
// under version (CardRecordVersion of the card).
func SealCardRecord(accountID string, version uint64, signedCard []byte) ([]byte, error) {
	key, err := cardRecordAEAD(accountID)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint64(make([]byte, 0, CardRecordOverhead+len(signedCard)), version)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, signedCard, out[:8]), nil
}

// OpenCardRecord decrypts a card record of accountID and verifies the card
// in it: signed by that account, with the version the record claims.
func OpenCardRecord(accountID string, record []byte) (*Card, []byte, error) {
	if len(record) < CardRecordOverhead {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrBadCardRecord, len(record))
	}
	key, err := cardRecordAEAD(accountID)
	if err != nil {
		return nil, nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, nil, err
	}
	nonce := record[8 : 8+chacha20poly1305.NonceSizeX]
	signed, err := aead.Open(nil, nonce, record[8+chacha20poly1305.NonceSizeX:], record[:8])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: does not decrypt", ErrBadCardRecord)
	}
	card, err := ParseSignedCard(signed)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadCardRecord, err)
	}
	v := binary.BigEndian.Uint64(record)
	if card.AccountID() != accountID || (v>>63 == 1 && v != CardRecordVersion(card)) || (v>>63 == 0 && v != card.Serial) {
		return nil, nil, fmt.Errorf("%w: not that account's card, or not the version claimed", ErrBadCardRecord)
	}
	return card, signed, nil
}
