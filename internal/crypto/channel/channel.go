// Package channel signs and verifies samizdat broadcast channel posts.
//
// A channel is identified by its owner's Ed25519 public key: the channel id
// is SHA-256("samizdat/channel/v1/id" || owner public key). Every post carries
// the channel id, a sequence number (0 for the first post), the hash of the
// previous post (all zero for the first), a timestamp, a priority (normal or
// alert), an opaque body and the owner's Ed25519 signature over
// "samizdat/channel/v1/post" || 0x00 || the encoding of all other fields —
// the same domain-separation rule as keys.Identity.Sign, so an identity key
// can own a channel. The hash of a post is
// SHA-256("samizdat/channel/v1/post-hash" || its full encoding).
//
// The hash chain (in the manner of Certificate Transparency's and Secure
// Scuttlebutt's append-only feeds) lets subscribers detect a dropped post (a
// gap in the sequence) and an owner who publishes two different posts with
// the same sequence number (a fork): VerifyNext accepts next only if it
// directly follows prev. Ed25519 signatures in Go's crypto/ed25519 are
// deterministic and non-malleable (canonical S is enforced), so a post has
// one valid encoding and one hash.
//
// Private channels encrypt the body before signing; this package treats the
// body as opaque bytes.
//
// Wire format (version 1), integers big-endian:
//
//	version (1) | channel id (32) | sequence (8) | previous hash (32) | timestamp (8, signed Unix milliseconds)
//	| priority (1) | body length (4) | body | signature (64)
//
// This package must never do I/O, log, start goroutines or keep mutable
// global state; randomness always comes from an io.Reader parameter.
package channel

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
)

const (
	// Version is the version byte of a post.
	Version = 1
	// IDSize is the size of a channel id.
	IDSize = sha256.Size
	// HashSize is the size of a post hash.
	HashSize = sha256.Size
	// SignatureSize is the size of the owner's signature.
	SignatureSize = ed25519.SignatureSize
	// MaxBodySize is the largest body a post may carry.
	MaxBodySize = 1 << 20
	// HeaderSize is everything before the body.
	HeaderSize = 1 + IDSize + 8 + HashSize + 8 + 1 + 4
	// Overhead is the number of bytes a post adds to its body.
	Overhead = HeaderSize + SignatureSize
	// MaxPostSize is the size of a post with a MaxBodySize body.
	MaxPostSize = MaxBodySize + Overhead

	idDomain   = "samizdat/channel/v1/id"
	postDomain = "samizdat/channel/v1/post"
	hashDomain = "samizdat/channel/v1/post-hash"
)

// Priority tells subscribers how to present a post.
type Priority uint8

const (
	// PriorityNormal is an ordinary post.
	PriorityNormal Priority = 0
	// PriorityAlert asks clients to notify the user prominently.
	PriorityAlert Priority = 1
)

var (
	// ErrTruncated is returned by ParsePost for input shorter than its encoding.
	ErrTruncated = errors.New("channel: truncated post")
	// ErrTooLarge is returned for a body above MaxBodySize or trailing bytes.
	ErrTooLarge = errors.New("channel: post too large")
	// ErrVersion is returned by ParsePost for an unknown version byte.
	ErrVersion = errors.New("channel: unsupported version")
	// ErrMalformed is returned for an unknown priority, or a first post with
	// a previous hash (or a later post without one).
	ErrMalformed = errors.New("channel: malformed post")
	// ErrWrongChannel is returned by Verify when the post's channel id is not
	// the owner's.
	ErrWrongChannel = errors.New("channel: post belongs to another channel")
	// ErrBadSignature is returned by Verify when the signature does not verify.
	ErrBadSignature = errors.New("channel: bad signature")
	// ErrChainBroken is returned by VerifyNext when next does not directly
	// follow prev: a gap, a fork, or a post of another channel.
	ErrChainBroken = errors.New("channel: hash chain broken")
	// ErrRandom is returned when the random source fails.
	ErrRandom = errors.New("channel: random source failed")
)

// Post is one signed channel post.
type Post struct {
	ChannelID [IDSize]byte
	Seq       uint64
	Prev      [HashSize]byte
	Timestamp int64 // Unix milliseconds, as claimed by the owner
	Priority  Priority
	Body      []byte
	Signature [SignatureSize]byte
}

// GenerateOwnerKey creates a channel owner key from 32 bytes of rand.
func GenerateOwnerKey(rand io.Reader) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, ErrRandom
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ID returns the channel id of an owner public key.
func ID(owner ed25519.PublicKey) [IDSize]byte {
	h := sha256.New()
	h.Write([]byte(idDomain))
	h.Write(owner)
	var id [IDSize]byte
	h.Sum(id[:0])
	return id
}

// Signer is what NewPost needs from an owner key; *keys.Identity satisfies
// it (with the same domain-separation rule), and OwnerKey adapts a raw
// Ed25519 key.
type Signer interface {
	Sign(domain string, msg []byte) []byte
}

// OwnerKey adapts an Ed25519 private key to Signer.
type OwnerKey ed25519.PrivateKey

// Sign signs domain || 0x00 || msg.
func (k OwnerKey) Sign(domain string, msg []byte) []byte {
	return ed25519.Sign(ed25519.PrivateKey(k), domainMessage(domain, msg))
}

// NewPost creates and signs the post following prev (nil for the channel's
// first post) in the channel of owner, whose public key is ownerPub.
func NewPost(owner Signer, ownerPub ed25519.PublicKey, prev *Post, timestamp int64, priority Priority, body []byte) (*Post, error) {
	if len(body) > MaxBodySize {
		return nil, ErrTooLarge
	}
	if priority > PriorityAlert {
		return nil, ErrMalformed
	}
	p := &Post{ChannelID: ID(ownerPub), Timestamp: timestamp, Priority: priority, Body: append([]byte(nil), body...)}
	if prev != nil {
		if prev.ChannelID != p.ChannelID || prev.Seq == 1<<64-1 {
			return nil, ErrChainBroken
		}
		p.Seq = prev.Seq + 1
		p.Prev = prev.Hash()
	}
	copy(p.Signature[:], owner.Sign(postDomain, p.signedPart()))
	// Catch an owner/ownerPub mismatch here rather than at every subscriber.
	if err := Verify(ownerPub, p); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Post) signedPart() []byte {
	b := make([]byte, 0, HeaderSize+len(p.Body)+SignatureSize)
	b = append(b, Version)
	b = append(b, p.ChannelID[:]...)
	b = binary.BigEndian.AppendUint64(b, p.Seq)
	b = append(b, p.Prev[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Timestamp))
	b = append(b, byte(p.Priority))
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Body)))
	return append(b, p.Body...)
}

// Marshal returns the versioned encoding of p.
func (p *Post) Marshal() []byte {
	return append(p.signedPart(), p.Signature[:]...)
}

// Hash returns the hash that the next post's Prev must equal.
func (p *Post) Hash() [HashSize]byte {
	h := sha256.New()
	h.Write([]byte(hashDomain))
	h.Write(p.Marshal())
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// ParsePost decodes a post. It checks the structure only; use Verify for the
// signature and VerifyNext for the chain.
func ParsePost(b []byte) (*Post, error) {
	switch {
	case len(b) < 1:
		return nil, ErrTruncated
	case b[0] != Version:
		return nil, ErrVersion
	case len(b) < Overhead:
		return nil, ErrTruncated
	case len(b) > MaxPostSize:
		return nil, ErrTooLarge
	}
	p := &Post{}
	off := 1
	copy(p.ChannelID[:], b[off:])
	off += IDSize
	p.Seq = binary.BigEndian.Uint64(b[off:])
	off += 8
	copy(p.Prev[:], b[off:])
	off += HashSize
	p.Timestamp = int64(binary.BigEndian.Uint64(b[off:]))
	off += 8
	p.Priority = Priority(b[off])
	off++
	n := uint64(binary.BigEndian.Uint32(b[off:]))
	off += 4
	switch rest := uint64(len(b) - off); {
	case n > MaxBodySize:
		return nil, ErrTooLarge
	case rest < n+SignatureSize:
		return nil, ErrTruncated
	case rest > n+SignatureSize:
		return nil, ErrTooLarge
	}
	p.Body = append([]byte{}, b[off:off+int(n)]...)
	copy(p.Signature[:], b[off+int(n):])
	if p.Priority > PriorityAlert || (p.Seq == 0) != (p.Prev == [HashSize]byte{}) {
		return nil, ErrMalformed
	}
	return p, nil
}

// Verify checks that post belongs to the channel of ownerPub, is well formed
// and carries the owner's signature.
func Verify(ownerPub ed25519.PublicKey, post *Post) error {
	if post == nil || len(ownerPub) != ed25519.PublicKeySize {
		return ErrMalformed
	}
	if post.ChannelID != ID(ownerPub) {
		return ErrWrongChannel
	}
	if len(post.Body) > MaxBodySize {
		return ErrTooLarge
	}
	if post.Priority > PriorityAlert || (post.Seq == 0) != (post.Prev == [HashSize]byte{}) {
		return ErrMalformed
	}
	if !ed25519.Verify(ownerPub, domainMessage(postDomain, post.signedPart()), post.Signature[:]) {
		return ErrBadSignature
	}
	return nil
}

// VerifyNext checks that next directly follows prev in the same channel:
// consecutive sequence numbers and next.Prev == prev.Hash(). A gap (a dropped
// post) or a fork (a different post at prev's position) returns
// ErrChainBroken. It does not check signatures: Verify both posts first.
func VerifyNext(prev, next *Post) error {
	if prev == nil || next == nil {
		return ErrMalformed
	}
	if next.ChannelID != prev.ChannelID || prev.Seq == 1<<64-1 || next.Seq != prev.Seq+1 || next.Prev != prev.Hash() {
		return ErrChainBroken
	}
	return nil
}

func domainMessage(domain string, msg []byte) []byte {
	m := make([]byte, 0, len(domain)+1+len(msg))
	m = append(m, domain...)
	m = append(m, 0)
	return append(m, msg...)
}
