package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"unicode"
)

// Short invites (issue 15): a samizdat: link of at most MaxShortInviteLen
// characters — it fits a text message, and a QR code of version ≤ 10 — that
// carries no card, only what is needed to fetch one:
//
//	samizdat:<base32 lowercase, no padding, of>
//	  version (1) | account key (32) | secret (16) | device key (32)
//	  | entries: header (1: kind<<6 | length) + data, kind 0 = compact binary multiaddr
//	  | checksum (4) = SHA-256("samizdat/short-invite/v1" || all before)[:4]
//
// The device key is the Ed25519 key behind the inviter's transport peer id;
// the entries are its entry points. The scanner asks that device for the
// full card over /samizdat/card/1, proving it knows the one-time secret
// (CardRequestProof), so that nobody who merely finds the device can take
// the card; failing that it reads the card record from the DHT. Either way
// the card must be signed by the account key the link names. The checksum
// turns a truncated or mistyped link into a clear error before any lookup.
//
// Case does not matter: a QR code is best made from the upper-case form
// (ShortInviteQRText), which QR's alphanumeric mode packs more tightly.

// Sizes of the short invite format.
const (
	ShortInviteVersion = 1
	ShortSecretSize    = 16
	ShortDeviceKeySize = ed25519.PublicKeySize
	// MaxShortInviteLen bounds a short link, scheme included.
	MaxShortInviteLen = 200
	// MaxShortEntrySize bounds one entry point (6 bits of length).
	MaxShortEntrySize = 63

	shortChecksumSize  = 4
	shortChecksumLabel = "samizdat/short-invite/v1"
	shortFixedSize     = 1 + ed25519.PublicKeySize + ShortSecretSize + ShortDeviceKeySize
	shortKindAddr      = 0
	cardRequestLabel   = "samizdat/card-request/v1"
)

// ErrShortInviteTooLong is returned by EncodeShortInvite when the link
// would be longer than MaxShortInviteLen (too many entry points).
var ErrShortInviteTooLong = errors.New("short invite too long")

// ShortInvite is a decoded short invite link.
type ShortInvite struct {
	AccountKey ed25519.PublicKey // the account's signing key
	Secret     []byte            // ShortSecretSize bytes, proves the link to the inviter
	DeviceKey  []byte            // Ed25519 key of the inviter's transport peer id
	Addrs      [][]byte          // compact binary multiaddrs of that device (each ≤ MaxShortEntrySize)
}

// AccountID returns the id of the account the link names.
func (s *ShortInvite) AccountID() string { return AccountIDFromKey(s.AccountKey) }

func shortChecksum(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte(shortChecksumLabel))
	h.Write(b)
	return h.Sum(nil)[:shortChecksumSize]
}

// EncodeShortInvite returns the link of s (lower case).
func EncodeShortInvite(s *ShortInvite) (string, error) {
	if len(s.AccountKey) != ed25519.PublicKeySize || len(s.Secret) != ShortSecretSize || len(s.DeviceKey) != ShortDeviceKeySize {
		return "", errorf(ErrBadInvite, "short invite: wrong key or secret size")
	}
	b := make([]byte, 0, 128)
	b = append(b, ShortInviteVersion)
	b = append(b, s.AccountKey...)
	b = append(b, s.Secret...)
	b = append(b, s.DeviceKey...)
	for _, a := range s.Addrs {
		if len(a) == 0 || len(a) > MaxShortEntrySize {
			return "", errorf(ErrBadInvite, "short invite: entry point of %d bytes", len(a))
		}
		b = append(b, shortKindAddr<<6|byte(len(a)))
		b = append(b, a...)
	}
	b = append(b, shortChecksum(b)...)
	link := InviteScheme + strings.ToLower(b32.EncodeToString(b))
	if len(link) > MaxShortInviteLen {
		return "", ErrShortInviteTooLong
	}
	return link, nil
}

// ShortInviteQRText returns the form of a short link to draw as a QR code:
// upper case, which QR's alphanumeric mode encodes in 5.5 bits a character
// instead of 8 (a smaller code, easier to scan).
func ShortInviteQRText(link string) string { return strings.ToUpper(link) }

// IsShortInvite reports whether link looks like a short invite rather than
// a long one (which carries its card after "?card="). It does not check it.
func IsShortInvite(link string) bool {
	link = stripSpace(link)
	if !hasScheme(link) {
		return false
	}
	rest := link[len(InviteScheme):]
	return !strings.ContainsAny(rest, "?/") && len(rest) != AccountIDLen
}

// ParseShortInvite decodes a short invite link. Case and whitespace are
// ignored. It checks the link's form and checksum only: the card it leads
// to is checked against AccountKey when it is fetched.
func ParseShortInvite(link string) (*ShortInvite, error) {
	link = stripSpace(link)
	if !hasScheme(link) {
		return nil, errorf(ErrBadInvite, "it must start with %q", InviteScheme)
	}
	if len(link) > MaxShortInviteLen {
		return nil, errorf(ErrBadInvite, "a short invite has at most %d characters", MaxShortInviteLen)
	}
	rest := strings.ToUpper(link[len(InviteScheme):])
	raw, err := b32.DecodeString(rest)
	if err != nil || b32.EncodeToString(raw) != rest {
		return nil, errorf(ErrBadInvite, "the link is damaged (was it cut short or mistyped?)")
	}
	if len(raw) < shortFixedSize+shortChecksumSize {
		return nil, errorf(ErrBadInvite, "the link is too short (was it cut short?)")
	}
	body, sum := raw[:len(raw)-shortChecksumSize], raw[len(raw)-shortChecksumSize:]
	if !bytes.Equal(sum, shortChecksum(body)) {
		return nil, errorf(ErrBadInvite, "the link is damaged (was it cut short or mistyped?)")
	}
	if body[0] != ShortInviteVersion {
		return nil, errorf(ErrBadInvite, "short invite version %d is not supported (update samizdat)", body[0])
	}
	s := &ShortInvite{}
	p := body[1:]
	s.AccountKey, p = ed25519.PublicKey(bytes.Clone(p[:ed25519.PublicKeySize])), p[ed25519.PublicKeySize:]
	s.Secret, p = bytes.Clone(p[:ShortSecretSize]), p[ShortSecretSize:]
	s.DeviceKey, p = bytes.Clone(p[:ShortDeviceKeySize]), p[ShortDeviceKeySize:]
	for len(p) > 0 {
		kind, n := p[0]>>6, int(p[0]&MaxShortEntrySize)
		if kind != shortKindAddr {
			return nil, errorf(ErrBadInvite, "unknown entry in the short invite (made by a newer samizdat?)")
		}
		if n == 0 || len(p) < 1+n {
			return nil, errorf(ErrBadInvite, "the link is damaged (bad entry point)")
		}
		s.Addrs, p = append(s.Addrs, bytes.Clone(p[1:1+n])), p[1+n:]
	}
	return s, nil
}

// CardRequestProof is what a scanner of a short invite sends the inviter's
// device over /samizdat/card/1: an HMAC under the invite's secret, bound
// to both ends' peer ids (authenticated by the transport), so it proves
// knowledge of the secret without revealing it and cannot be replayed by
// another peer or to another device.
func CardRequestProof(secret []byte, requesterPeer, responderPeer string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(cardRequestLabel))
	mac.Write([]byte{0})
	mac.Write([]byte(requesterPeer))
	mac.Write([]byte{0})
	mac.Write([]byte(responderPeer))
	return mac.Sum(nil)
}

// CardRequestProofSize is the size of a CardRequestProof.
const CardRequestProofSize = sha256.Size

// hasScheme reports whether link starts with InviteScheme in any case
// (ASCII only: no Unicode case folding).
func hasScheme(link string) bool {
	return len(link) >= len(InviteScheme) && strings.ToLower(link[:len(InviteScheme)]) == InviteScheme
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}
