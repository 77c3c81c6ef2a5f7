// Package ratchet implements the Double Ratchet algorithm with header
// encryption for samizdat's 1:1 sessions.
//
// It follows Signal's Double Ratchet specification (revision 4,
// https://signal.org/docs/specifications/doubleratchet/), §3 for the
// algorithm and §4 ("Double Ratchet with header encryption") for the
// RatchetInitAliceHE / RatchetInitBobHE variant used here: message headers
// (the sender's ratchet public key and the message counters) are encrypted
// under header keys that change with every DH ratchet step, so a relay sees
// neither the ratchet keys nor the counters. NewInitiator and NewResponder are
// RatchetInitAliceHE and RatchetInitBobHE; the shared secret, the two shared
// header keys and the session associated data come from the handshake package
// (PQXDH), and the responder's ratchet key pair is its signed prekey.
//
// Primitives (§5.2 of the spec, "recommended cryptographic algorithms"):
//   - KDF_RK_HE: HKDF-SHA-256 with the root key as salt and the DH output as
//     input key material, 96 bytes of output split into the new root key, a
//     chain key and the next header key.
//   - KDF_CK: HMAC-SHA-256 keyed by the chain key, with a separate one-byte
//     constant per output: 0x02 gives the next chain key, and the message key
//     is the pair (AEAD key = HMAC(ck, 0x01), nonce = first 12 bytes of
//     HMAC(ck, 0x03)). Signal's ENCRYPT expands a 32-byte message key with
//     HKDF into an AES-CBC key, a MAC key and an IV; an AEAD needs only a key
//     and a nonce, so both are derived directly from the chain key with the
//     spec's own KDF_CK pattern, which costs one HMAC keying per message
//     instead of two.
//   - ENCRYPT: ChaCha20-Poly1305 (RFC 8439) with the message key's key and
//     nonce. Every message key encrypts exactly one message, so no nonce is
//     ever reused under a key. ChaCha20 was chosen over AES-256-GCM because
//     every message has a fresh key: it has no key schedule (AES-GCM's key
//     expansion and GHASH table cost more than encrypting a short message),
//     and it is constant time in software, which matters on the phones
//     without AES instructions that samizdat must serve. AES-GCM is faster
//     only for bulk data on AES-NI machines.
//   - HENCRYPT: XChaCha20-Poly1305 under the header key. A header key seals
//     every header of a sending chain, so each header carries a fresh 192-bit
//     random nonce; nonce collisions are negligible (about 2^-128 after 2^32
//     headers), so a nonce is never reused under a header key.
//
// The associated data of every message body is the session associated data
// (both identities, fixed when the session is created) followed by the whole
// encrypted header (version byte, header nonce and sealed header), as in
// ENCRYPT(mk, plaintext, CONCAT(AD, enc_header)).
//
// Wire format (version 1), all integers big-endian:
//
//	version (1) | header nonce (24) | sealed header (40 + 16) | sealed body (len + 16)
//	header plaintext = ratchet public key (32) | PN (4) | N (4)
//
// Skipped message keys (§3.5, §4.4) are stored per header key, at most MaxSkip
// per step and at most Config.MaxSkippedKeys in total (the oldest are evicted),
// across at most MaxSkippedChains receiving chains. Decrypt is transactional:
// on any error the session is left exactly as it was. A message whose key has
// already been used or deleted is rejected with ErrReplay.
//
// This package must never do I/O, log, start goroutines or keep mutable global
// state; randomness always comes from the io.Reader parameter.
package ratchet

import (
	"crypto/cipher"
	"crypto/ecdh"
	"errors"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// Version is the wire and state format version.
	Version = 1

	// KeySize is the size of every symmetric key and X25519 key.
	KeySize = 32
	// HeaderNonceSize is the size of the random XChaCha20-Poly1305 nonce of
	// a sealed header.
	HeaderNonceSize = chacha20poly1305.NonceSizeX
	// BodyNonceSize is the size of a message body's ChaCha20-Poly1305 nonce.
	BodyNonceSize = chacha20poly1305.NonceSize
	// TagSize is the size of a Poly1305 authentication tag.
	TagSize = chacha20poly1305.Overhead
	// HeaderPlaintextSize is the size of a header before encryption:
	// ratchet public key (32) | PN (4) | N (4).
	HeaderPlaintextSize = KeySize + 4 + 4
	// SealedHeaderSize is the size of an encrypted header without its nonce.
	SealedHeaderSize = HeaderPlaintextSize + TagSize
	// HeaderSize is the size of everything before the message body:
	// version (1) | header nonce (24) | sealed header (56).
	HeaderSize = 1 + HeaderNonceSize + SealedHeaderSize
	// Overhead is the number of bytes a message adds to its plaintext.
	Overhead = HeaderSize + TagSize

	// MaxPlaintextSize is the largest plaintext Encrypt accepts.
	MaxPlaintextSize = 1 << 20
	// MaxMessageSize is the largest message Decrypt accepts.
	MaxMessageSize = MaxPlaintextSize + Overhead
	// MaxADSize is the largest session associated data accepted.
	MaxADSize = 4096

	// DefaultMaxSkip is the default bound on message keys skipped in one
	// receiving chain by a single message.
	DefaultMaxSkip = 1000
	// HardMaxSkip caps Config.MaxSkip whatever the caller asks for.
	HardMaxSkip = 100_000
	// HardMaxSkippedKeys caps Config.MaxSkippedKeys.
	HardMaxSkippedKeys = 2 * HardMaxSkip
	// MaxSkippedChains is the number of previous receiving chains whose
	// header keys are remembered (for skipped keys and replay detection).
	MaxSkippedChains = 16

	// maxCounter is the last usable message number: N is 32 bits and
	// N+1 must not wrap.
	maxCounter = 1<<32 - 2
)

var (
	// ErrTruncated is returned when a message or state is shorter than its
	// encoding requires.
	ErrTruncated = errors.New("ratchet: truncated input")
	// ErrTooLarge is returned when a plaintext, message or state exceeds its
	// size limit.
	ErrTooLarge = errors.New("ratchet: input too large")
	// ErrVersion is returned for an unknown version byte.
	ErrVersion = errors.New("ratchet: unsupported version")
	// ErrAuth is returned by Decrypt when the message does not authenticate
	// under any key of the session (forged, tampered, or not for this
	// session).
	ErrAuth = errors.New("ratchet: message authentication failed")
	// ErrReplay is returned by Decrypt for a message whose key has already
	// been used (a replay) or deleted (evicted from the skipped-key store).
	ErrReplay = errors.New("ratchet: message already received or too old")
	// ErrTooManySkipped is returned by Decrypt when accepting the message
	// would skip more than Config.MaxSkip message keys.
	ErrTooManySkipped = errors.New("ratchet: too many skipped messages")
	// ErrNoSendingChain is returned by Encrypt on a responder session that
	// has not yet received its first message.
	ErrNoSendingChain = errors.New("ratchet: no sending chain yet")
	// ErrChainExhausted is returned by Encrypt after 2^32-1 messages without
	// a reply from the peer.
	ErrChainExhausted = errors.New("ratchet: sending chain exhausted")
	// ErrInvalidKey is returned when a key is malformed or a DH output is
	// all zero (low-order peer key).
	ErrInvalidKey = errors.New("ratchet: invalid key")
	// ErrInvalidState is returned by UnmarshalSession for an encoding that is
	// well formed but violates the session invariants.
	ErrInvalidState = errors.New("ratchet: invalid session state")
	// ErrRandom is returned when the random source fails.
	ErrRandom = errors.New("ratchet: random source failed")
)

// Config bounds the work and memory an untrusted peer can cause.
type Config struct {
	// MaxSkip is the maximum number of message keys one message may make the
	// session skip (and store) in a receiving chain. 0 means DefaultMaxSkip;
	// values above HardMaxSkip are capped.
	MaxSkip int
	// MaxSkippedKeys bounds the total number of stored skipped message keys;
	// when exceeded the oldest are evicted. 0 means 2*MaxSkip; values above
	// HardMaxSkippedKeys are capped.
	MaxSkippedKeys int
}

func (c Config) maxSkip() uint32 {
	switch {
	case c.MaxSkip <= 0:
		return DefaultMaxSkip
	case c.MaxSkip > HardMaxSkip:
		return HardMaxSkip
	}
	return uint32(c.MaxSkip)
}

func (c Config) maxSkippedKeys() uint32 {
	switch {
	case c.MaxSkippedKeys <= 0:
		return 2 * c.maxSkip()
	case c.MaxSkippedKeys > HardMaxSkippedKeys:
		return HardMaxSkippedKeys
	}
	return uint32(c.MaxSkippedKeys)
}

// normalize returns the effective configuration with explicit values.
func (c Config) normalize() Config {
	return Config{MaxSkip: int(c.maxSkip()), MaxSkippedKeys: int(c.maxSkippedKeys())}
}

// core is the fixed-size part of the state (the spec's state variables except
// MKSKIPPED). It is a plain value so Decrypt can work on a copy and commit.
type core struct {
	dhs    *ecdh.PrivateKey // DHs; never nil. Treated as immutable.
	dhsPub [KeySize]byte
	dhr    [KeySize]byte // DHr
	rk     [KeySize]byte // RK
	cks    [KeySize]byte // CKs
	ckr    [KeySize]byte // CKr
	hks    [KeySize]byte // HKs
	hkr    [KeySize]byte // HKr
	nhks   [KeySize]byte // NHKs
	nhkr   [KeySize]byte // NHKr
	ns     uint32        // Ns
	nr     uint32        // Nr
	pn     uint32        // PN

	hasDHr, hasCKs, hasCKr, hasHKs, hasHKr bool
}

// messageKey is a message's AEAD key and nonce (see KDF_CK in the package
// comment).
type messageKey struct {
	key   [KeySize]byte
	nonce [BodyNonceSize]byte
}

type skippedKey struct {
	n  uint32
	mk messageKey
}

// skippedChain holds the skipped message keys of one receiving chain, oldest
// first. A chain with no keys left is kept (up to MaxSkippedChains) so that
// replays of its messages are recognised.
type skippedChain struct {
	hk   [KeySize]byte
	keys []skippedKey
}

// Session is one side of a Double Ratchet session. It is not safe for
// concurrent use.
type Session struct {
	cfg     Config // normalized
	ad      []byte
	c       core
	skipped []skippedChain // oldest first

	// Cached AEADs for the current header keys and a scratch buffer for the
	// body associated data; derived data, not state.
	hksAEAD, hkrAEAD cipher.AEAD
	adBuf            []byte
}

// NewInitiator is RatchetInitAliceHE: sk is the shared secret, hka the shared
// header key of the initiator's first sending chain, nhkb the shared next
// header key of the responder, remoteRatchet the responder's ratchet public
// key (its signed prekey) and ad the session associated data. The session can
// Encrypt immediately.
func NewInitiator(rand io.Reader, sk, hka, nhkb, remoteRatchet [KeySize]byte, ad []byte, cfg Config) (*Session, error) {
	if len(ad) > MaxADSize {
		return nil, ErrTooLarge
	}
	dhs, err := generateDH(rand)
	if err != nil {
		return nil, err
	}
	s := &Session{cfg: cfg.normalize(), ad: append([]byte(nil), ad...)}
	c := &s.c
	c.dhs = dhs
	copy(c.dhsPub[:], dhs.PublicKey().Bytes())
	c.dhr, c.hasDHr = remoteRatchet, true
	dh, err := computeDH(dhs, remoteRatchet)
	if err != nil {
		return nil, err
	}
	c.rk, c.cks, c.nhks = kdfRK(sk, dh)
	c.hasCKs = true
	c.hks, c.hasHKs = hka, true
	c.nhkr = nhkb
	return s, nil
}

// NewResponder is RatchetInitBobHE: sk, hka and nhkb are as for NewInitiator,
// ratchetKey is the responder's X25519 ratchet key pair (the signed prekey
// whose public half the initiator used). The session cannot Encrypt until it
// has decrypted the initiator's first message.
func NewResponder(sk, hka, nhkb [KeySize]byte, ratchetKey *ecdh.PrivateKey, ad []byte, cfg Config) (*Session, error) {
	if len(ad) > MaxADSize {
		return nil, ErrTooLarge
	}
	if ratchetKey == nil || ratchetKey.Curve() != ecdh.X25519() {
		return nil, ErrInvalidKey
	}
	dhs := ratchetKey // immutable, safe to share
	s := &Session{cfg: cfg.normalize(), ad: append([]byte(nil), ad...)}
	c := &s.c
	c.dhs = dhs
	copy(c.dhsPub[:], dhs.PublicKey().Bytes())
	c.rk = sk
	c.nhks = nhkb
	c.nhkr = hka
	return s, nil
}

// SetConfig changes the session's limits. It does not evict stored keys
// until the next successful Decrypt.
func (s *Session) SetConfig(c Config) { s.cfg = c.normalize() }

// Config returns the session's effective limits.
func (s *Session) Config() Config { return s.cfg }

// CanEncrypt reports whether the session has a sending chain (a responder
// gets one when it decrypts its first message).
func (s *Session) CanEncrypt() bool { return s.c.hasCKs }

// SkippedKeys returns the number of stored skipped message keys.
func (s *Session) SkippedKeys() int {
	n := 0
	for i := range s.skipped {
		n += len(s.skipped[i].keys)
	}
	return n
}

func generateDH(rand io.Reader) (*ecdh.PrivateKey, error) {
	var b [KeySize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, ErrRandom
	}
	k, err := ecdh.X25519().NewPrivateKey(b[:])
	if err != nil {
		return nil, ErrInvalidKey
	}
	return k, nil
}

func computeDH(priv *ecdh.PrivateKey, pub [KeySize]byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return nil, ErrInvalidKey
	}
	out, err := priv.ECDH(p)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return out, nil
}
