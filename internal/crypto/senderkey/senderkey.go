// Package senderkey implements group messaging with Signal's sender keys.
//
// Each member of a group owns a Sender: an epoch number, a chain key, an
// iteration counter and an Ed25519 signing key. The member sends a
// Distribution (epoch, iteration, chain key and signing public key) to every
// other member over the pairwise, end-to-end encrypted ratchet sessions; each
// recipient turns it into a Receiver. A group message then costs one AEAD
// encryption and one Ed25519 signature whatever the group size, and is
// broadcast (gossipsub) to everyone. This is the construction of Signal's
// sender keys (libsignal's SenderKeyState / SenderKeyMessage, as used for
// Signal groups and described in the "Private Group System" and
// sealed-sender-multi-recipient designs): the chain ratchets forward with
// HMAC-SHA-256 (message key = HMAC(ck, 0x01), next chain key =
// HMAC(ck, 0x02)), giving forward secrecy within an epoch but no
// post-compromise security; removing a member (or recovering from a
// compromise) rotates every member's sender key: New(rand, epoch+1), with a
// fresh Distribution sent to the remaining members.
//
// Messages are encrypted with ChaCha20-Poly1305 (as in package ratchet: no
// key schedule for single-use keys, constant time without AES hardware)
// under a key and nonce derived with HKDF-Expand from the message key (each
// message key is used once, so a nonce never repeats under a key), with the
// message header and the sender's signing public key as associated data, and
// then signed: Ed25519 over "samizdat/senderkey/v1/message" || 0x00 ||
// header || ciphertext. Receivers check the epoch, then the signature, then
// the iteration, and only then decrypt. Out-of-order messages are accepted
// within Config.MaxSkip iterations (skipped keys are kept, bounded, oldest
// evicted); replays are rejected.
//
// Wire format (version 1), integers big-endian:
//
//	message      = version (1) | epoch (4) | iteration (4) | ciphertext (len + 16) | signature (64)
//	distribution = version (1) | epoch (4) | iteration (4) | chain key (32) | signing public key (32)
//
// This package must never do I/O, log, start goroutines or keep mutable
// global state; randomness always comes from an io.Reader parameter.
package senderkey

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// Version is the version byte of every encoding in this package.
	Version = 1
	// KeySize is the size of chain keys, message keys and signing public keys.
	KeySize = 32
	// SignatureSize is the size of an Ed25519 signature.
	SignatureSize = ed25519.SignatureSize
	// TagSize is the Poly1305 tag size.
	TagSize = chacha20poly1305.Overhead
	// HeaderSize is version (1) | epoch (4) | iteration (4).
	HeaderSize = 1 + 4 + 4
	// Overhead is the number of bytes a message adds to its plaintext.
	Overhead = HeaderSize + TagSize + SignatureSize
	// MaxPlaintextSize is the largest plaintext Encrypt accepts.
	MaxPlaintextSize = 1 << 20
	// MaxMessageSize is the largest message Decrypt accepts.
	MaxMessageSize = MaxPlaintextSize + Overhead
	// DistributionSize is the size of a marshalled Distribution.
	DistributionSize = HeaderSize + KeySize + KeySize
	// SenderStateSize is the size of a marshalled Sender:
	// version (1) | epoch (4) | iteration (4) | chain key (32) | signing seed (32).
	SenderStateSize = HeaderSize + KeySize + ed25519.SeedSize

	// DefaultMaxSkip is the default bound on iterations skipped by one message.
	DefaultMaxSkip = 1000
	// HardMaxSkip caps Config.MaxSkip.
	HardMaxSkip = 100_000

	maxCounter = 1<<32 - 2

	infoMessage   = "samizdat/senderkey/v1/message-key"
	messageDomain = "samizdat/senderkey/v1/message"
	nonceSize     = chacha20poly1305.NonceSize
)

var (
	// ErrTruncated is returned by decoders for input shorter than required.
	ErrTruncated = errors.New("senderkey: truncated input")
	// ErrTooLarge is returned for a plaintext, message or state above its limit.
	ErrTooLarge = errors.New("senderkey: input too large")
	// ErrVersion is returned for an unknown version byte.
	ErrVersion = errors.New("senderkey: unsupported version")
	// ErrMalformed is returned by decoders for out-of-range or non-canonical
	// fields.
	ErrMalformed = errors.New("senderkey: malformed input")
	// ErrEpoch is returned by Receiver.Decrypt for a message of another epoch.
	ErrEpoch = errors.New("senderkey: wrong epoch")
	// ErrBadSignature is returned by Receiver.Decrypt when the signature does
	// not verify under the sender's signing key.
	ErrBadSignature = errors.New("senderkey: bad signature")
	// ErrAuth is returned by Receiver.Decrypt when a correctly signed message
	// does not decrypt (the receiver's chain does not match the sender's).
	ErrAuth = errors.New("senderkey: message authentication failed")
	// ErrReplay is returned for a message whose key was already used or
	// deleted, or that predates the distribution the receiver was built from.
	ErrReplay = errors.New("senderkey: message already received or too old")
	// ErrTooManySkipped is returned when a message would skip more than
	// Config.MaxSkip iterations.
	ErrTooManySkipped = errors.New("senderkey: too many skipped messages")
	// ErrChainExhausted is returned by Encrypt after 2^32-1 messages in an
	// epoch, and by Rotate after the last epoch.
	ErrChainExhausted = errors.New("senderkey: chain exhausted, rotate")
	// ErrRandom is returned when the random source fails.
	ErrRandom = errors.New("senderkey: random source failed")
)

// Config bounds a Receiver's work and memory.
type Config struct {
	// MaxSkip is the most iterations one message may skip. 0 means
	// DefaultMaxSkip; values above HardMaxSkip are capped. At most 2*MaxSkip
	// skipped keys are stored; the oldest are evicted.
	MaxSkip int
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

// Sender is the owner's sending state for one epoch. It is not safe for
// concurrent use; persist it after every Encrypt.
type Sender struct {
	epoch, iteration uint32
	chainKey         [KeySize]byte
	seed             [ed25519.SeedSize]byte
	signing          ed25519.PrivateKey
}

// New creates a sender key for epoch with a fresh chain key and signing key
// (64 bytes read from rand).
func New(rand io.Reader, epoch uint32) (*Sender, error) {
	s := &Sender{epoch: epoch}
	if _, err := io.ReadFull(rand, s.chainKey[:]); err != nil {
		return nil, ErrRandom
	}
	if _, err := io.ReadFull(rand, s.seed[:]); err != nil {
		return nil, ErrRandom
	}
	s.signing = ed25519.NewKeyFromSeed(s.seed[:])
	return s, nil
}

// Rotate returns a new sender key for the next epoch. The old state should
// be discarded once the new Distribution has been sent.
func (s *Sender) Rotate(rand io.Reader) (*Sender, error) {
	if s.epoch == 1<<32-1 {
		return nil, ErrChainExhausted
	}
	return New(rand, s.epoch+1)
}

// Epoch returns the sender key's epoch.
func (s *Sender) Epoch() uint32 { return s.epoch }

// Iteration returns the iteration of the next message.
func (s *Sender) Iteration() uint32 { return s.iteration }

// SigningKey returns the sender key's Ed25519 public key.
func (s *Sender) SigningKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), s.signing[ed25519.SeedSize:]...)
}

// Distribution returns the message that lets a member decrypt this sender's
// messages from the current iteration on. It contains the chain key: send it
// only over an end-to-end encrypted channel.
func (s *Sender) Distribution() *Distribution {
	d := &Distribution{Epoch: s.epoch, Iteration: s.iteration, ChainKey: s.chainKey}
	copy(d.SigningKey[:], s.signing[ed25519.SeedSize:])
	return d
}

// Encrypt encrypts and signs plaintext as the next message of the chain.
func (s *Sender) Encrypt(plaintext []byte) ([]byte, error) {
	switch {
	case len(plaintext) > MaxPlaintextSize:
		return nil, ErrTooLarge
	case s.iteration > maxCounter:
		return nil, ErrChainExhausted
	}
	mk, next := kdfCK(s.chainKey)
	out := make([]byte, HeaderSize, Overhead+len(plaintext))
	out[0] = Version
	binary.BigEndian.PutUint32(out[1:], s.epoch)
	binary.BigEndian.PutUint32(out[5:], s.iteration)
	aead, nonce := messageAEAD(mk)
	out = aead.Seal(out, nonce, plaintext, associatedData(out[:HeaderSize], s.signing[ed25519.SeedSize:]))
	out = append(out, ed25519.Sign(s.signing, signedMessage(out))...)
	s.chainKey = next
	s.iteration++
	return out, nil
}

// Marshal returns the SenderStateSize-byte private encoding of s.
func (s *Sender) Marshal() []byte {
	b := make([]byte, 0, SenderStateSize)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, s.epoch)
	b = binary.BigEndian.AppendUint32(b, s.iteration)
	b = append(b, s.chainKey[:]...)
	return append(b, s.seed[:]...)
}

// UnmarshalSender decodes the output of Sender.Marshal.
func UnmarshalSender(b []byte) (*Sender, error) {
	switch {
	case len(b) < 1:
		return nil, ErrTruncated
	case b[0] != Version:
		return nil, ErrVersion
	case len(b) < SenderStateSize:
		return nil, ErrTruncated
	case len(b) > SenderStateSize:
		return nil, ErrTooLarge
	}
	s := &Sender{epoch: binary.BigEndian.Uint32(b[1:]), iteration: binary.BigEndian.Uint32(b[5:])}
	copy(s.chainKey[:], b[HeaderSize:])
	copy(s.seed[:], b[HeaderSize+KeySize:])
	s.signing = ed25519.NewKeyFromSeed(s.seed[:])
	return s, nil
}

// Distribution carries a sender key to a group member.
type Distribution struct {
	Epoch      uint32
	Iteration  uint32
	ChainKey   [KeySize]byte
	SigningKey [KeySize]byte
}

// Marshal returns the DistributionSize-byte encoding of d.
func (d *Distribution) Marshal() []byte {
	b := make([]byte, 0, DistributionSize)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, d.Epoch)
	b = binary.BigEndian.AppendUint32(b, d.Iteration)
	b = append(b, d.ChainKey[:]...)
	return append(b, d.SigningKey[:]...)
}

// ParseDistribution decodes a Distribution.
func ParseDistribution(b []byte) (*Distribution, error) {
	switch {
	case len(b) < 1:
		return nil, ErrTruncated
	case b[0] != Version:
		return nil, ErrVersion
	case len(b) < DistributionSize:
		return nil, ErrTruncated
	case len(b) > DistributionSize:
		return nil, ErrTooLarge
	}
	d := &Distribution{Epoch: binary.BigEndian.Uint32(b[1:]), Iteration: binary.BigEndian.Uint32(b[5:])}
	copy(d.ChainKey[:], b[HeaderSize:])
	copy(d.SigningKey[:], b[HeaderSize+KeySize:])
	if d.Iteration > maxCounter+1 {
		return nil, ErrMalformed
	}
	return d, nil
}

// PeekEpoch returns the epoch and iteration of a message without verifying
// it, so the caller can pick the right Receiver.
func PeekEpoch(msg []byte) (epoch, iteration uint32, err error) {
	switch {
	case len(msg) < 1:
		return 0, 0, ErrTruncated
	case msg[0] != Version:
		return 0, 0, ErrVersion
	case len(msg) < Overhead:
		return 0, 0, ErrTruncated
	}
	return binary.BigEndian.Uint32(msg[1:]), binary.BigEndian.Uint32(msg[5:]), nil
}

func kdfCK(ck [KeySize]byte) (mk, next [KeySize]byte) {
	h := hmac.New(sha256.New, ck[:])
	h.Write([]byte{1})
	h.Sum(mk[:0])
	h.Reset()
	h.Write([]byte{2})
	h.Sum(next[:0])
	return
}

func messageAEAD(mk [KeySize]byte) (cipher.AEAD, []byte) {
	out, err := hkdf.Expand(sha256.New, mk[:], infoMessage, KeySize+nonceSize)
	if err != nil {
		panic("senderkey: hkdf: " + err.Error()) // fixed, valid length
	}
	aead, err := chacha20poly1305.New(out[:KeySize])
	if err != nil {
		panic("senderkey: chacha20poly1305: " + err.Error()) // key is 32 bytes
	}
	return aead, out[KeySize:]
}

func associatedData(header, signingKey []byte) []byte {
	ad := make([]byte, 0, HeaderSize+KeySize)
	ad = append(ad, header...)
	return append(ad, signingKey...)
}

func signedMessage(headerAndCiphertext []byte) []byte {
	m := make([]byte, 0, len(messageDomain)+1+len(headerAndCiphertext))
	m = append(m, messageDomain...)
	m = append(m, 0)
	return append(m, headerAndCiphertext...)
}
