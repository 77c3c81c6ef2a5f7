package keys

import (
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
)

// Sealed boxes hide who wrote to whom from the nodes that store and carry
// mail (DESIGN §2, §7: sealed sender). An envelope left with a mailbox host
// or a mesh carrier is sealed to the recipient's identity X25519 key with
// HPKE (RFC 9180, base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// ChaCha20-Poly1305, from the standard library's crypto/hpke). The holder
// sees a fresh ephemeral key and ciphertext: nothing names the sender or
// the recipient, and two boxes for the same recipient cannot be linked.
// The sender is authenticated inside, by the double-ratchet message the
// box carries; the box itself only gives confidentiality.
//
// The one exception to this package's "randomness from the caller" rule:
// crypto/hpke draws the ephemeral key from crypto/rand (tests make it
// deterministic with testing/cryptotest.SetGlobalRandom).

const (
	// SealedVersion is the first byte of a sealed box.
	SealedVersion = 1
	// SealedOverhead is what sealing adds to the content: the version
	// byte, the 32-byte encapsulated key and the 16-byte AEAD tag.
	SealedOverhead = 1 + 32 + 16

	sealedInfo = "samizdat/sealed/v1"
)

// ErrSealed is returned by Unseal for a box that is not for this identity,
// was tampered with, or is not a sealed box at all.
var ErrSealed = errors.New("keys: cannot open sealed box")

// Seal encrypts content so that only the holder of to's identity can read
// it. The result is SealedOverhead bytes longer than content.
func Seal(to PublicIdentity, content []byte) ([]byte, error) {
	if to.IsZero() {
		return nil, ErrInvalidKey
	}
	dh, err := ecdh.X25519().NewPublicKey(to.dh[:])
	if err != nil {
		return nil, ErrInvalidKey
	}
	pk, err := hpke.NewDHKEMPublicKey(dh)
	if err != nil {
		return nil, ErrInvalidKey
	}
	ct, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(sealedInfo), content)
	if err != nil {
		return nil, err
	}
	return append([]byte{SealedVersion}, ct...), nil
}

// Unseal opens a box made by Seal for id.
func (id *Identity) Unseal(box []byte) ([]byte, error) {
	if len(box) < SealedOverhead || box[0] != SealedVersion {
		return nil, ErrSealed
	}
	k, err := hpke.NewDHKEMPrivateKey(id.dh)
	if err != nil {
		return nil, ErrSealed
	}
	out, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(sealedInfo), box[1:])
	if err != nil {
		return nil, ErrSealed
	}
	return out, nil
}
