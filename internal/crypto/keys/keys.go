// Package keys holds samizdat account identity keys.
//
// An account identity (DESIGN.md §4) is an Ed25519 signing key plus an X25519
// Diffie-Hellman key. The X25519 public key is signed by the Ed25519 key, so a
// single verified value — the 128-byte PublicIdentity encoding
// (Ed25519 public key | X25519 public key | Ed25519 signature over the X25519
// key) — authenticates both. Signal uses one XEdDSA key for both roles (see the
// XEdDSA and PQXDH specifications, https://signal.org/docs/); samizdat keeps
// two standard keys instead and binds them with a signature, which needs no
// custom primitive.
//
// Every signature made with an Identity is domain separated: Sign(domain, msg)
// signs domain || 0x00 || msg, so a signature made for one purpose (a prekey,
// a contact card, a channel post) can never be replayed as another.
//
// SafetyNumber follows Signal's numeric fingerprint construction: each side's
// public key is hashed with 5200 iterations of SHA-512, the first 30 bytes are
// rendered as 30 decimal digits (six 5-digit groups, each a 40-bit big-endian
// integer mod 100000), and the two 30-digit strings are concatenated in sorted
// order so both parties see the same 60 digits.
//
// This package must never do I/O, log, or keep mutable global state; all
// randomness comes from the io.Reader the caller passes in.
package keys

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"io"
	"strings"
)

const (
	// SigningKeySize is the size of an Ed25519 public key.
	SigningKeySize = ed25519.PublicKeySize
	// DHKeySize is the size of an X25519 public or private key.
	DHKeySize = 32
	// SignatureSize is the size of an Ed25519 signature.
	SignatureSize = ed25519.SignatureSize
	// SeedSize is the size of an Ed25519 private key seed.
	SeedSize = ed25519.SeedSize

	// PublicIdentitySize is the size of a marshalled PublicIdentity:
	// Ed25519 public key (32) | X25519 public key (32) | Ed25519 signature
	// over the X25519 key (64).
	PublicIdentitySize = SigningKeySize + DHKeySize + SignatureSize

	// IdentityVersion is the version byte of a marshalled Identity.
	IdentityVersion = 1
	// IdentitySize is the size of a marshalled Identity:
	// version (1) | Ed25519 seed (32) | X25519 private key (32).
	IdentitySize = 1 + SeedSize + DHKeySize

	// SafetyNumberDigits is the length of a safety number.
	SafetyNumberDigits = 60

	// fingerprintIterations is Signal's iteration count for numeric fingerprints.
	fingerprintIterations = 5200
	// fingerprintVersion is the 2-byte version prefix of the first hash input.
	fingerprintVersion = 0

	// dhKeyDomain separates the signature over the identity X25519 key.
	dhKeyDomain = "samizdat/keys/identity-dh/v1"
)

var (
	// ErrTruncated is returned by decoders when the input is shorter than the
	// encoding requires.
	ErrTruncated = errors.New("keys: truncated input")
	// ErrTooLarge is returned by decoders when the input is longer than the
	// encoding allows.
	ErrTooLarge = errors.New("keys: input too large")
	// ErrVersion is returned by UnmarshalIdentity for an unknown version byte.
	ErrVersion = errors.New("keys: unsupported version")
	// ErrBadSignature is returned by ParsePublicIdentity when the signature
	// over the X25519 key does not verify under the Ed25519 key.
	ErrBadSignature = errors.New("keys: bad signature")
	// ErrInvalidKey is returned when a key is malformed or, for a DH
	// computation, when the peer's key is a low-order point.
	ErrInvalidKey = errors.New("keys: invalid key")
	// ErrRandom is returned when the random source fails.
	ErrRandom = errors.New("keys: random source failed")
)

// Identity is a private account identity: an Ed25519 signing key and an
// X25519 Diffie-Hellman key signed by it.
type Identity struct {
	seed    [SeedSize]byte
	signing ed25519.PrivateKey
	dh      *ecdh.PrivateKey
	public  PublicIdentity
}

// PublicIdentity is the public half of an Identity. A non-zero PublicIdentity
// can only be obtained from Identity.Public or ParsePublicIdentity, so its DH
// key signature has always been verified.
type PublicIdentity struct {
	signing [SigningKeySize]byte
	dh      [DHKeySize]byte
	sig     [SignatureSize]byte
}

// GenerateIdentity creates a new identity from 64 bytes of rand.
func GenerateIdentity(rand io.Reader) (*Identity, error) {
	var b [SeedSize + DHKeySize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, ErrRandom
	}
	return newIdentity(b[:SeedSize], b[SeedSize:])
}

func newIdentity(seed, dhPriv []byte) (*Identity, error) {
	dh, err := ecdh.X25519().NewPrivateKey(dhPriv)
	if err != nil {
		return nil, ErrInvalidKey
	}
	id := &Identity{signing: ed25519.NewKeyFromSeed(seed), dh: dh}
	copy(id.seed[:], seed)
	copy(id.public.signing[:], id.signing[SeedSize:])
	copy(id.public.dh[:], dh.PublicKey().Bytes())
	copy(id.public.sig[:], id.Sign(dhKeyDomain, id.public.dh[:]))
	return id, nil
}

// Public returns the public identity.
func (id *Identity) Public() PublicIdentity { return id.public }

// Marshal returns the versioned private encoding of id (IdentitySize bytes).
// The result is secret key material.
func (id *Identity) Marshal() []byte {
	out := make([]byte, 0, IdentitySize)
	out = append(out, IdentityVersion)
	out = append(out, id.seed[:]...)
	return append(out, id.dh.Bytes()...)
}

// UnmarshalIdentity decodes the output of Identity.Marshal.
func UnmarshalIdentity(b []byte) (*Identity, error) {
	switch {
	case len(b) < IdentitySize:
		return nil, ErrTruncated
	case len(b) > IdentitySize:
		return nil, ErrTooLarge
	case b[0] != IdentityVersion:
		return nil, ErrVersion
	}
	return newIdentity(b[1:1+SeedSize], b[1+SeedSize:])
}

// Sign signs domain || 0x00 || msg with the Ed25519 key. Domains are constant
// strings chosen by the code; a domain containing a NUL byte would make the
// encoding ambiguous and is a programming error, so Sign panics on one.
func (id *Identity) Sign(domain string, msg []byte) []byte {
	if strings.IndexByte(domain, 0) >= 0 {
		panic("keys: signature domain contains NUL")
	}
	return ed25519.Sign(id.signing, domainMessage(domain, msg))
}

// ECDH computes the X25519 shared secret between the identity DH key and
// remote. It returns ErrInvalidKey if the result is all zero (remote is a
// low-order point).
func (id *Identity) ECDH(remote *ecdh.PublicKey) ([]byte, error) {
	if remote == nil || remote.Curve() != ecdh.X25519() {
		return nil, ErrInvalidKey
	}
	s, err := id.dh.ECDH(remote)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return s, nil
}

func domainMessage(domain string, msg []byte) []byte {
	m := make([]byte, 0, len(domain)+1+len(msg))
	m = append(m, domain...)
	m = append(m, 0)
	return append(m, msg...)
}

// Marshal returns the PublicIdentitySize-byte encoding of p.
func (p PublicIdentity) Marshal() []byte {
	out := make([]byte, 0, PublicIdentitySize)
	out = append(out, p.signing[:]...)
	out = append(out, p.dh[:]...)
	return append(out, p.sig[:]...)
}

// ParsePublicIdentity decodes a PublicIdentity and verifies the signature
// over its X25519 key.
func ParsePublicIdentity(b []byte) (PublicIdentity, error) {
	var p PublicIdentity
	switch {
	case len(b) < PublicIdentitySize:
		return p, ErrTruncated
	case len(b) > PublicIdentitySize:
		return p, ErrTooLarge
	}
	copy(p.signing[:], b)
	copy(p.dh[:], b[SigningKeySize:])
	copy(p.sig[:], b[SigningKeySize+DHKeySize:])
	if !ed25519.Verify(p.signing[:], domainMessage(dhKeyDomain, p.dh[:]), p.sig[:]) {
		return PublicIdentity{}, ErrBadSignature
	}
	return p, nil
}

// SigningKey returns a copy of the Ed25519 public key.
func (p PublicIdentity) SigningKey() ed25519.PublicKey {
	return bytes.Clone(p.signing[:])
}

// DHKey returns the X25519 public key. It fails only for the zero value.
func (p PublicIdentity) DHKey() (*ecdh.PublicKey, error) {
	if p.IsZero() {
		return nil, ErrInvalidKey
	}
	k, err := ecdh.X25519().NewPublicKey(p.dh[:])
	if err != nil {
		return nil, ErrInvalidKey
	}
	return k, nil
}

// Verify reports whether sig is a valid signature of domain || 0x00 || msg by
// p. It returns false for the zero PublicIdentity and for domains containing
// a NUL byte.
func (p PublicIdentity) Verify(domain string, msg, sig []byte) bool {
	if p.IsZero() || len(sig) != SignatureSize || strings.IndexByte(domain, 0) >= 0 {
		return false
	}
	return ed25519.Verify(p.signing[:], domainMessage(domain, msg), sig)
}

// Equal reports whether p and q are the same identity.
func (p PublicIdentity) Equal(q PublicIdentity) bool {
	return subtle.ConstantTimeCompare(p.Marshal(), q.Marshal()) == 1
}

// IsZero reports whether p is the zero value (no identity).
func (p PublicIdentity) IsZero() bool { return p == PublicIdentity{} }

// SafetyNumber returns the 60-digit safety number of the pair (a, b); it is
// the same for (b, a). See the package comment for the construction.
func SafetyNumber(a, b PublicIdentity) string {
	fa, fb := fingerprint(a), fingerprint(b)
	if fb < fa {
		fa, fb = fb, fa
	}
	return fa + fb
}

// fingerprint renders one side's 30 digits. The hashed key is the Ed25519
// key followed by the X25519 key; Signal's "stable identifier" is the account
// id, which in samizdat is the Ed25519 key itself.
func fingerprint(p PublicIdentity) string {
	key := make([]byte, 0, SigningKeySize+DHKeySize)
	key = append(key, p.signing[:]...)
	key = append(key, p.dh[:]...)

	h := sha512.New()
	var v [2]byte
	binary.BigEndian.PutUint16(v[:], fingerprintVersion)
	h.Write(v[:])
	h.Write(key)
	h.Write(p.signing[:])
	sum := h.Sum(nil)
	for range fingerprintIterations {
		h.Reset()
		h.Write(sum)
		h.Write(key)
		sum = h.Sum(sum[:0])
	}

	var sb strings.Builder
	for i := 0; i < 30; i += 5 {
		var c uint64
		for _, x := range sum[i : i+5] {
			c = c<<8 | uint64(x)
		}
		c %= 100000
		d := []byte{'0', '0', '0', '0', '0'}
		for j := 4; j >= 0; j-- {
			d[j] = byte('0' + c%10)
			c /= 10
		}
		sb.Write(d)
	}
	return sb.String()
}
