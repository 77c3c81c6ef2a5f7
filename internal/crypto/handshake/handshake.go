// Package handshake establishes samizdat 1:1 sessions with a PQXDH-style key
// agreement.
//
// It follows Signal's PQXDH specification (revision 3,
// https://signal.org/docs/specifications/pqxdh/) with X25519, SHA-256 and
// ML-KEM-768 (FIPS 203) in place of CRYSTALS-Kyber-1024, and with the
// identity key split into an Ed25519 signing key and a signed X25519 key (see
// package keys) instead of one XEdDSA key.
//
// Bob (the responder) publishes a Bundle signed with his identity: a signed
// X25519 prekey SPK_B, a signed last-resort ML-KEM-768 prekey, and optionally
// one-time X25519 prekeys OPK_B (unsigned, as in the spec) and signed one-time
// ML-KEM-768 prekeys. Alice (the initiator) verifies the signatures, generates
// an ephemeral key EK_A and computes
//
//	DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
//	DH4 = DH(EK_A, OPK_B)   (only if a one-time prekey is used)
//	(CT, SS) = ML-KEM-768.Encaps(PQPK_B)   (a one-time KEM prekey if the bundle has one, else the last-resort one)
//	out = HKDF-SHA-256(ikm = F || DH1 || DH2 || DH3 [|| DH4] || SS, salt = 32 zero bytes,
//	                   info = "samizdat_PQXDH_X25519_SHA-256_ML-KEM-768", 96 bytes)
//
// where F is 32 0xFF bytes. The first 32 bytes of out are the shared secret
// SK, the next 32 the initiator's first header key HKa and the last 32 the
// responder's first next-header key NHKb, the inputs of the header-encrypted
// Double Ratchet (package ratchet, RatchetInitAliceHE/RatchetInitBobHE). The
// associated data is AD = IK_A || IK_B (the 128-byte PublicIdentity
// encodings), and Bob's signed prekey is his initial ratchet key pair.
//
// Alice sends an Initiation (her identity, EK_A, the prekey ids used and CT)
// together with her first ratchet message. Bob's Respond recomputes the same
// values and deletes the one-time prekeys used, so a second initiation naming
// them fails with ErrPrekeyUsed. An initiation that uses no one-time prekey
// (the spec warns it can be replayed) is remembered in a bounded replay cache
// of its signed prekey and refused a second time with ErrReplayedInitiation;
// Bob should only persist the change (and trust the session) once the first
// ratchet message has decrypted. Prekeys rotate and expire on a schedule and
// one-time prekeys are handed out one pair per requester: see rotate.go.
//
// ML-KEM encapsulation needs 32 random bytes. With crypto/rand.Reader as
// rand (what production callers pass), Initiate calls mlkem's Encapsulate,
// which reads them from that same system generator. With any other reader
// (known-answer tests) it reads them from rand and runs the derandomized
// ML-KEM.Encaps_internal of FIPS 203 via crypto/mlkem/mlkemtest, so that
// transcripts are reproducible from a fixed seed; in FIPS 140-only mode, where
// that is forbidden, it falls back to the system generator.
//
// This package must never do I/O, log, start goroutines or keep mutable
// global state.
package handshake

import (
	"errors"
)

const (
	// Version is the version byte of every encoding in this package.
	Version = 1

	// KeySize is the size of X25519 keys and of derived secrets.
	KeySize = 32
	// SignatureSize is the size of an Ed25519 signature.
	SignatureSize = 64
	// KEMPublicKeySize is the size of an ML-KEM-768 encapsulation key.
	KEMPublicKeySize = 1184
	// KEMCiphertextSize is the size of an ML-KEM-768 ciphertext.
	KEMCiphertextSize = 1088
	// KEMSeedSize is the size of an ML-KEM-768 decapsulation key seed.
	KEMSeedSize = 64
	// IDSize is the size of a prekey id.
	IDSize = 4

	// MaxOneTimePrekeys bounds the one-time prekeys of each kind held or
	// published.
	MaxOneTimePrekeys = 100

	// InitiationSize is the size of a marshalled Initiation: version (1) |
	// identity (128) | ephemeral key (32) | signed prekey id (4) | flags (1) |
	// one-time prekey id (4) | KEM prekey id (4) | KEM ciphertext (1088).
	InitiationSize = 1 + 128 + KeySize + IDSize + 1 + IDSize + IDSize + KEMCiphertextSize

	kdfInfo = "samizdat_PQXDH_X25519_SHA-256_ML-KEM-768"

	signedPrekeyDomain = "samizdat/pqxdh/v1/signed-prekey"
	kemPrekeyDomain    = "samizdat/pqxdh/v1/kem-prekey"

	kemLastResort = 0
	kemOneTime    = 1
)

var (
	// ErrTruncated is returned by decoders for input shorter than the
	// encoding requires.
	ErrTruncated = errors.New("handshake: truncated input")
	// ErrTooLarge is returned by decoders for input longer than the encoding
	// allows, and when more than MaxOneTimePrekeys are requested.
	ErrTooLarge = errors.New("handshake: input too large")
	// ErrVersion is returned by decoders for an unknown version byte.
	ErrVersion = errors.New("handshake: unsupported version")
	// ErrMalformed is returned by decoders for an encoding whose fields are
	// out of range or not in canonical form.
	ErrMalformed = errors.New("handshake: malformed input")
	// ErrBadSignature is returned when a bundle's identity or prekey
	// signature does not verify.
	ErrBadSignature = errors.New("handshake: bad signature")
	// ErrInvalidKey is returned for a malformed public key or a DH output
	// that is all zero (low-order point).
	ErrInvalidKey = errors.New("handshake: invalid key")
	// ErrUnknownPrekey is returned by Respond when an initiation names a
	// prekey id that was never issued (or a signed prekey that was rotated
	// out).
	ErrUnknownPrekey = errors.New("handshake: unknown prekey")
	// ErrPrekeyUsed is returned by Respond when an initiation names a
	// one-time prekey that has already been used.
	ErrPrekeyUsed = errors.New("handshake: one-time prekey already used")
	// ErrWrongIdentity is returned by Respond when the prekeys do not belong
	// to the given identity.
	ErrWrongIdentity = errors.New("handshake: prekeys belong to another identity")
	// ErrRandom is returned when the random source fails.
	ErrRandom = errors.New("handshake: random source failed")
)
