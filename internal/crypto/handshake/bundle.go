package handshake

import (
	"bytes"
	"crypto/mlkem"
	"encoding/binary"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/bincursor"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
)

// OneTimePrekey is a public one-time X25519 prekey. As in PQXDH these are
// not signed.
type OneTimePrekey struct {
	ID  uint32
	Key [KeySize]byte
}

// KEMOneTimePrekey is a public, signed one-time ML-KEM-768 prekey.
type KEMOneTimePrekey struct {
	ID        uint32
	Key       []byte // KEMPublicKeySize bytes
	Signature [SignatureSize]byte
}

// Bundle is a responder's public prekey bundle. Initiate uses the first
// entry of each one-time list, if any; callers handing out bundles from a
// published set should trim the lists accordingly.
type Bundle struct {
	Identity keys.PublicIdentity

	SignedPrekeyID  uint32
	SignedPrekey    [KeySize]byte
	SignedPrekeySig [SignatureSize]byte

	// The signed last-resort ML-KEM-768 prekey.
	KEMPrekeyID  uint32
	KEMPrekey    []byte // KEMPublicKeySize bytes
	KEMPrekeySig [SignatureSize]byte

	OneTimePrekeys    []OneTimePrekey
	KEMOneTimePrekeys []KEMOneTimePrekey

	// verified is a copy of the signed fields as ParseBundle verified them
	// (or Prekeys.Bundle produced them), so Initiate can skip verifying
	// again whatever the caller has not changed since.
	verified *signedFields
}

// signedFields are the signature-covered values of a bundle.
type signedFields struct {
	identity keys.PublicIdentity
	spkID    uint32
	spk      [KeySize]byte
	spkSig   [SignatureSize]byte
	kems     []verifiedKEM
}

type verifiedKEM struct {
	kind byte
	id   uint32
	key  []byte
	sig  [SignatureSize]byte
}

func (b *Bundle) snapshot() *signedFields {
	f := &signedFields{identity: b.Identity, spkID: b.SignedPrekeyID, spk: b.SignedPrekey, spkSig: b.SignedPrekeySig}
	f.kems = append(f.kems, verifiedKEM{kemLastResort, b.KEMPrekeyID, bytes.Clone(b.KEMPrekey), b.KEMPrekeySig})
	for _, k := range b.KEMOneTimePrekeys {
		f.kems = append(f.kems, verifiedKEM{kemOneTime, k.ID, bytes.Clone(k.Key), k.Signature})
	}
	return f
}

// signedPrekeyVerified reports whether the signed prekey fields are exactly
// those already verified.
func (b *Bundle) signedPrekeyVerified() bool {
	v := b.verified
	return v != nil && v.identity == b.Identity && v.spkID == b.SignedPrekeyID &&
		v.spk == b.SignedPrekey && v.spkSig == b.SignedPrekeySig
}

// kemVerified reports whether the KEM prekey is exactly one already verified.
func (b *Bundle) kemVerified(kind byte, id uint32, key []byte, sig []byte) bool {
	v := b.verified
	if v == nil || v.identity != b.Identity {
		return false
	}
	for _, k := range v.kems {
		if k.kind == kind && k.id == id && bytes.Equal(k.key, key) && bytes.Equal(k.sig[:], sig) {
			return true
		}
	}
	return false
}

// Bundle encoding (version 1), integers big-endian:
//
//	version (1) | identity (128)
//	| signed prekey id (4) | signed prekey (32) | signature (64)
//	| KEM prekey id (4) | KEM prekey (1184) | signature (64)
//	| one-time count (2) | (id (4) | key (32))*
//	| KEM one-time count (2) | (id (4) | key (1184) | signature (64))*
const (
	bundleFixedSize   = 1 + keys.PublicIdentitySize + IDSize + KeySize + SignatureSize + IDSize + KEMPublicKeySize + SignatureSize + 2 + 2
	bundleOneTimeSize = IDSize + KeySize
	bundleKEMSize     = IDSize + KEMPublicKeySize + SignatureSize
	// MaxBundleSize is the size of a bundle with MaxOneTimePrekeys of each kind.
	MaxBundleSize = bundleFixedSize + MaxOneTimePrekeys*(bundleOneTimeSize+bundleKEMSize)
)

// Marshal returns the versioned encoding of b. A bundle whose KEM keys have
// the wrong length cannot be encoded faithfully; it must come from
// Prekeys.Bundle or ParseBundle.
func (b *Bundle) Marshal() []byte {
	out := make([]byte, 0, bundleFixedSize+len(b.OneTimePrekeys)*bundleOneTimeSize+len(b.KEMOneTimePrekeys)*bundleKEMSize)
	out = append(out, Version)
	out = append(out, b.Identity.Marshal()...)
	out = binary.BigEndian.AppendUint32(out, b.SignedPrekeyID)
	out = append(out, b.SignedPrekey[:]...)
	out = append(out, b.SignedPrekeySig[:]...)
	out = binary.BigEndian.AppendUint32(out, b.KEMPrekeyID)
	out = appendFixed(out, b.KEMPrekey, KEMPublicKeySize)
	out = append(out, b.KEMPrekeySig[:]...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.OneTimePrekeys)))
	for _, o := range b.OneTimePrekeys {
		out = binary.BigEndian.AppendUint32(out, o.ID)
		out = append(out, o.Key[:]...)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.KEMOneTimePrekeys)))
	for _, k := range b.KEMOneTimePrekeys {
		out = binary.BigEndian.AppendUint32(out, k.ID)
		out = appendFixed(out, k.Key, KEMPublicKeySize)
		out = append(out, k.Signature[:]...)
	}
	return out
}

// appendFixed appends exactly n bytes: v truncated or zero padded.
func appendFixed(out, v []byte, n int) []byte {
	if len(v) > n {
		v = v[:n]
	}
	out = append(out, v...)
	return append(out, make([]byte, n-len(v))...)
}

// ParseBundle decodes a bundle and verifies the identity and every prekey
// signature against b.Identity.
func ParseBundle(in []byte) (*Bundle, error) {
	if len(in) < 1 {
		return nil, ErrTruncated
	}
	if in[0] != Version {
		return nil, ErrVersion
	}
	if len(in) > MaxBundleSize {
		return nil, ErrTooLarge
	}
	r := bincursor.New(in[1:], ErrTruncated)
	b := &Bundle{}
	idb := r.Next(keys.PublicIdentitySize)
	b.SignedPrekeyID = r.U32()
	copy(b.SignedPrekey[:], r.Next(KeySize))
	copy(b.SignedPrekeySig[:], r.Next(SignatureSize))
	b.KEMPrekeyID = r.U32()
	b.KEMPrekey = append([]byte(nil), r.Next(KEMPublicKeySize)...)
	copy(b.KEMPrekeySig[:], r.Next(SignatureSize))
	n := int(r.U16())
	if r.Err == nil && n > MaxOneTimePrekeys {
		return nil, ErrMalformed
	}
	for range n {
		var o OneTimePrekey
		o.ID = r.U32()
		copy(o.Key[:], r.Next(KeySize))
		if r.Err != nil {
			break
		}
		b.OneTimePrekeys = append(b.OneTimePrekeys, o)
	}
	n = int(r.U16())
	if r.Err == nil && n > MaxOneTimePrekeys {
		return nil, ErrMalformed
	}
	for range n {
		var k KEMOneTimePrekey
		k.ID = r.U32()
		k.Key = append([]byte(nil), r.Next(KEMPublicKeySize)...)
		copy(k.Signature[:], r.Next(SignatureSize))
		if r.Err != nil {
			break
		}
		b.KEMOneTimePrekeys = append(b.KEMOneTimePrekeys, k)
	}
	if r.Err != nil {
		return nil, r.Err
	}
	if len(r.Rest()) != 0 {
		return nil, ErrTooLarge
	}
	var err error
	if b.Identity, err = keys.ParsePublicIdentity(idb); err != nil {
		return nil, ErrBadSignature
	}
	if err := b.verifySignedPrekey(); err != nil {
		return nil, err
	}
	if err := b.verifyKEM(kemLastResort, b.KEMPrekeyID, b.KEMPrekey, b.KEMPrekeySig[:]); err != nil {
		return nil, err
	}
	for _, k := range b.KEMOneTimePrekeys {
		if err := b.verifyKEM(kemOneTime, k.ID, k.Key, k.Signature[:]); err != nil {
			return nil, err
		}
	}
	b.verified = b.snapshot()
	return b, nil
}

func (b *Bundle) verifySignedPrekey() error {
	if !b.Identity.Verify(signedPrekeyDomain, signedPrekeyMessage(b.SignedPrekeyID, b.SignedPrekey[:]), b.SignedPrekeySig[:]) {
		return ErrBadSignature
	}
	return nil
}

// verifyKEM checks a KEM prekey's signature and returns ErrInvalidKey if the
// key is not a valid ML-KEM-768 encapsulation key.
func (b *Bundle) verifyKEM(kind byte, id uint32, key, sig []byte) error {
	if len(key) != KEMPublicKeySize {
		return ErrInvalidKey
	}
	if !b.Identity.Verify(kemPrekeyDomain, kemPrekeyMessage(kind, id, key), sig) {
		return ErrBadSignature
	}
	return nil
}

// kemKey parses and checks an encapsulation key.
func kemKey(key []byte) (*mlkem.EncapsulationKey768, error) {
	ek, err := mlkem.NewEncapsulationKey768(key)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return ek, nil
}
