// Package identity turns the account keys of internal/crypto/keys into the
// things users handle: account ids with checksums, signed contact cards,
// samizdat: invite links, safety numbers and QR codes (DESIGN §4).
//
// An account id is the account's Ed25519 signing key, with a 4-byte
// checksum, in lowercase base32 (no padding): 58 characters that survive
// being read aloud or retyped, with typos detected. The network never sees
// it: transport peer ids are separate device keys.
//
// The package does no I/O beyond writing a QR code to a writer and must
// never log; it holds no secrets other than through the keys it is given.
package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
)

// AccountIDLen is the length of an account id in characters.
const AccountIDLen = 58

const (
	checksumSize  = 4
	checksumLabel = "samizdat/account-id/v1"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Errors about account ids.
var (
	// ErrBadAccountID is returned by ParseAccountID for text that is not an
	// account id at all (wrong length or characters).
	ErrBadAccountID = errors.New("not a samizdat account id")
	// ErrChecksum is returned by ParseAccountID when the id is well formed
	// but its checksum does not match: usually a typo.
	ErrChecksum = errors.New("account id checksum mismatch (typo?)")
)

func checksum(pub []byte) []byte {
	h := sha256.New()
	h.Write([]byte(checksumLabel))
	h.Write(pub)
	return h.Sum(nil)[:checksumSize]
}

// AccountIDFromKey returns the account id of an Ed25519 signing key.
func AccountIDFromKey(pub ed25519.PublicKey) string {
	raw := append(append([]byte{}, pub...), checksum(pub)...)
	return strings.ToLower(b32.EncodeToString(raw))
}

// AccountID returns the account id of a public identity.
func AccountID(p keys.PublicIdentity) string {
	return AccountIDFromKey(p.SigningKey())
}

// ParseAccountID checks an account id (case-insensitive, surrounding space
// ignored) and returns its signing key.
func ParseAccountID(s string) (ed25519.PublicKey, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) != AccountIDLen {
		return nil, ErrBadAccountID
	}
	raw, err := b32.DecodeString(s)
	if err != nil || len(raw) != ed25519.PublicKeySize+checksumSize {
		return nil, ErrBadAccountID
	}
	if b32.EncodeToString(raw) != s {
		// Non-zero unused bits in the last character: not canonical.
		return nil, ErrChecksum
	}
	pub, sum := raw[:ed25519.PublicKeySize], raw[ed25519.PublicKeySize:]
	if !bytes.Equal(sum, checksum(pub)) {
		return nil, ErrChecksum
	}
	return ed25519.PublicKey(pub), nil
}

// Short returns a prefix of an account id, enough to tell ids apart in a
// log line without writing the whole id.
func Short(accountID string) string {
	if len(accountID) > 8 {
		return accountID[:8]
	}
	return accountID
}

// SafetyNumber returns the 60-digit safety number of two identities, the
// same whichever side computes it, in 12 groups of 5 digits.
func SafetyNumber(a, b keys.PublicIdentity) string {
	digits := keys.SafetyNumber(a, b)
	var sb strings.Builder
	for i := 0; i < len(digits); i += 5 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		end := min(i+5, len(digits))
		sb.WriteString(digits[i:end])
	}
	return sb.String()
}

func errorf(base error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{base}, args...)...)
}
