package senderkey

import (
	"crypto/ed25519"
	"encoding/binary"
	"slices"
)

type skippedKey struct {
	iteration uint32
	mk        [KeySize]byte
}

// Receiver decrypts one member's messages for one epoch. It is not safe for
// concurrent use; persist it after every successful Decrypt.
type Receiver struct {
	epoch, iteration uint32
	chainKey         [KeySize]byte
	signingKey       [KeySize]byte
	maxSkip          uint32
	skipped          []skippedKey // ascending iterations, all below iteration
}

// NewReceiver creates the receiving state for a distribution.
func NewReceiver(d *Distribution, cfg Config) (*Receiver, error) {
	if d == nil || d.Iteration > maxCounter+1 {
		return nil, ErrMalformed
	}
	return &Receiver{
		epoch: d.Epoch, iteration: d.Iteration, chainKey: d.ChainKey,
		signingKey: d.SigningKey, maxSkip: cfg.maxSkip(),
	}, nil
}

// SetConfig changes the receiver's limits.
func (r *Receiver) SetConfig(cfg Config) { r.maxSkip = cfg.maxSkip() }

// Epoch returns the epoch the receiver accepts.
func (r *Receiver) Epoch() uint32 { return r.epoch }

// SigningKey returns the sender's Ed25519 public key.
func (r *Receiver) SigningKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), r.signingKey[:]...)
}

// SkippedKeys returns the number of stored skipped message keys.
func (r *Receiver) SkippedKeys() int { return len(r.skipped) }

// Decrypt checks the epoch (ErrEpoch), the signature (ErrBadSignature) and
// the iteration (ErrReplay, ErrTooManySkipped), then decrypts. On any error
// the receiver is unchanged.
func (r *Receiver) Decrypt(msg []byte) ([]byte, error) {
	switch {
	case len(msg) < 1:
		return nil, ErrTruncated
	case msg[0] != Version:
		return nil, ErrVersion
	case len(msg) < Overhead:
		return nil, ErrTruncated
	case len(msg) > MaxMessageSize:
		return nil, ErrTooLarge
	}
	if binary.BigEndian.Uint32(msg[1:]) != r.epoch {
		return nil, ErrEpoch
	}
	body, sig := msg[:len(msg)-SignatureSize], msg[len(msg)-SignatureSize:]
	if !ed25519.Verify(r.signingKey[:], signedMessage(body), sig) {
		return nil, ErrBadSignature
	}
	it := binary.BigEndian.Uint32(msg[5:])
	if it < r.iteration {
		for i, k := range r.skipped {
			if k.iteration == it {
				pt, err := r.open(k.mk, body)
				if err != nil {
					return nil, err
				}
				r.skipped = slices.Delete(r.skipped, i, i+1) // zeroes the freed slot
				return pt, nil
			}
		}
		return nil, ErrReplay
	}
	if it > maxCounter {
		return nil, ErrMalformed
	}
	if it-r.iteration > r.maxSkip {
		return nil, ErrTooManySkipped
	}
	ck := r.chainKey
	var skipped []skippedKey
	if it > r.iteration {
		skipped = make([]skippedKey, 0, it-r.iteration)
	}
	for i := r.iteration; i < it; i++ {
		var mk [KeySize]byte
		mk, ck = kdfCK(ck)
		skipped = append(skipped, skippedKey{iteration: i, mk: mk})
	}
	mk, ck := kdfCK(ck)
	pt, err := r.open(mk, body)
	if err != nil {
		return nil, err
	}
	r.chainKey = ck
	r.iteration = it + 1
	r.skipped = append(r.skipped, skipped...)
	if extra := len(r.skipped) - int(2*r.maxSkip); extra > 0 {
		r.skipped = slices.Delete(r.skipped, 0, extra)
	}
	return pt, nil
}

func (r *Receiver) open(mk [KeySize]byte, body []byte) ([]byte, error) {
	aead, nonce := messageAEAD(mk)
	ct := body[HeaderSize:]
	pt, err := aead.Open(make([]byte, 0, len(ct)-TagSize), nonce, ct, associatedData(body[:HeaderSize], r.signingKey[:]))
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// receiverFixedSize is version (1) | epoch (4) | iteration (4) | chain key
// (32) | signing key (32) | max skip (4) | skipped count (4); each skipped
// key is iteration (4) | message key (32).
const (
	receiverFixedSize = HeaderSize + 2*KeySize + 4 + 4
	skippedKeySize    = 4 + KeySize
	maxReceiverSize   = receiverFixedSize + 2*HardMaxSkip*skippedKeySize
)

// Marshal returns the versioned private encoding of r.
func (r *Receiver) Marshal() []byte {
	b := make([]byte, 0, receiverFixedSize+len(r.skipped)*skippedKeySize)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, r.epoch)
	b = binary.BigEndian.AppendUint32(b, r.iteration)
	b = append(b, r.chainKey[:]...)
	b = append(b, r.signingKey[:]...)
	b = binary.BigEndian.AppendUint32(b, r.maxSkip)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.skipped)))
	for _, k := range r.skipped {
		b = binary.BigEndian.AppendUint32(b, k.iteration)
		b = append(b, k.mk[:]...)
	}
	return b
}

// UnmarshalReceiver decodes the output of Receiver.Marshal.
func UnmarshalReceiver(b []byte) (*Receiver, error) {
	switch {
	case len(b) < 1:
		return nil, ErrTruncated
	case b[0] != Version:
		return nil, ErrVersion
	case len(b) < receiverFixedSize:
		return nil, ErrTruncated
	case len(b) > maxReceiverSize:
		return nil, ErrTooLarge
	}
	r := &Receiver{epoch: binary.BigEndian.Uint32(b[1:]), iteration: binary.BigEndian.Uint32(b[5:])}
	off := HeaderSize
	copy(r.chainKey[:], b[off:])
	off += KeySize
	copy(r.signingKey[:], b[off:])
	off += KeySize
	r.maxSkip = binary.BigEndian.Uint32(b[off:])
	n := binary.BigEndian.Uint32(b[off+4:])
	off += 8
	if r.maxSkip < 1 || r.maxSkip > HardMaxSkip || n > 2*r.maxSkip || r.iteration > maxCounter+1 {
		return nil, ErrMalformed
	}
	rest := b[off:]
	if uint64(len(rest)) < uint64(n)*skippedKeySize {
		return nil, ErrTruncated
	}
	if uint64(len(rest)) > uint64(n)*skippedKeySize {
		return nil, ErrTooLarge
	}
	r.skipped = make([]skippedKey, n)
	for i := range r.skipped {
		k := &r.skipped[i]
		k.iteration = binary.BigEndian.Uint32(rest)
		copy(k.mk[:], rest[4:skippedKeySize])
		rest = rest[skippedKeySize:]
		if k.iteration >= r.iteration || (i > 0 && k.iteration <= r.skipped[i-1].iteration) {
			return nil, ErrMalformed
		}
	}
	return r, nil
}
