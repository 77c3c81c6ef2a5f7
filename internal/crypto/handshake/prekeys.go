package handshake

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"encoding/binary"
	"io"
	"slices"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/bincursor"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
)

type signedPrekey struct {
	id   uint32
	priv [KeySize]byte
	sig  [SignatureSize]byte
	key  *ecdh.PrivateKey // built from priv on first use
}

type kemPrekey struct {
	id   uint32
	seed [KEMSeedSize]byte
	sig  [SignatureSize]byte
	dk   *mlkem.DecapsulationKey768 // expanded from seed on first use
}

type oneTimePrekey struct {
	id   uint32
	priv [KeySize]byte
	key  *ecdh.PrivateKey // built from priv on first use
}

// privateKey returns the X25519 key of priv, building it once: Go's
// ecdh.NewPrivateKey computes the public key, a full scalar multiplication.
func privateKey(cache **ecdh.PrivateKey, priv *[KeySize]byte) (*ecdh.PrivateKey, error) {
	if *cache == nil {
		k, err := ecdh.X25519().NewPrivateKey(priv[:])
		if err != nil {
			return nil, ErrInvalidKey
		}
		*cache = k
	}
	return *cache, nil
}

func (s *signedPrekey) privateKey() (*ecdh.PrivateKey, error)  { return privateKey(&s.key, &s.priv) }
func (o *oneTimePrekey) privateKey() (*ecdh.PrivateKey, error) { return privateKey(&o.key, &o.priv) }

func publicBytes(k *ecdh.PrivateKey, err error) [KeySize]byte {
	var pub [KeySize]byte
	if err == nil {
		copy(pub[:], k.PublicKey().Bytes())
	}
	return pub
}

// Prekeys is the private side of a Bundle. It is not safe for concurrent use
// and holds secret keys: persist it encrypted.
type Prekeys struct {
	identity keys.PublicIdentity

	nextSignedID, nextOneTimeID, nextKEMOneTimeID uint32

	signed signedPrekey
	kem    kemPrekey // last resort

	// The previous signed prekey and last-resort KEM prekey stay valid for
	// one rotation, for initiations already in flight.
	hasPrev    bool
	prevSigned signedPrekey
	prevKEM    kemPrekey

	oneTime    []oneTimePrekey
	kemOneTime []kemPrekey
}

// NewPrekeys creates a signed prekey, a signed last-resort ML-KEM-768 prekey
// and oneTime one-time prekeys of each kind (X25519 and ML-KEM-768).
func NewPrekeys(rand io.Reader, id *keys.Identity, oneTime int) (*Prekeys, error) {
	if oneTime < 0 || oneTime > MaxOneTimePrekeys {
		return nil, ErrTooLarge
	}
	p := &Prekeys{identity: id.Public(), nextSignedID: 1, nextOneTimeID: 1, nextKEMOneTimeID: 1}
	if err := p.Rotate(rand, id); err != nil {
		return nil, err
	}
	p.hasPrev, p.prevSigned, p.prevKEM = false, signedPrekey{}, kemPrekey{}
	if err := p.AddOneTime(rand, id, oneTime); err != nil {
		return nil, err
	}
	return p, nil
}

// Rotate replaces the signed prekey and the last-resort KEM prekey with new
// ones; the previous pair stays usable until the next rotation.
func (p *Prekeys) Rotate(rand io.Reader, id *keys.Identity) error {
	if !id.Public().Equal(p.identity) {
		return ErrWrongIdentity
	}
	var spk signedPrekey
	if _, err := io.ReadFull(rand, spk.priv[:]); err != nil {
		return ErrRandom
	}
	k, err := spk.privateKey()
	if err != nil {
		return err
	}
	spk.id = p.nextSignedID
	copy(spk.sig[:], id.Sign(signedPrekeyDomain, signedPrekeyMessage(spk.id, k.PublicKey().Bytes())))
	kem, err := newKEMPrekey(rand, id, kemLastResort, p.nextSignedID)
	if err != nil {
		return err
	}
	p.nextSignedID++
	p.hasPrev, p.prevSigned, p.prevKEM = true, p.signed, p.kem
	p.signed, p.kem = spk, kem
	return nil
}

// AddOneTime adds n one-time prekeys of each kind. The total of each kind
// may not exceed MaxOneTimePrekeys.
func (p *Prekeys) AddOneTime(rand io.Reader, id *keys.Identity, n int) error {
	if !id.Public().Equal(p.identity) {
		return ErrWrongIdentity
	}
	if n < 0 || len(p.oneTime)+n > MaxOneTimePrekeys || len(p.kemOneTime)+n > MaxOneTimePrekeys {
		return ErrTooLarge
	}
	opks := make([]oneTimePrekey, n)
	kems := make([]kemPrekey, n)
	for i := range n {
		opks[i].id = p.nextOneTimeID + uint32(i)
		if _, err := io.ReadFull(rand, opks[i].priv[:]); err != nil {
			return ErrRandom
		}
		var err error
		if kems[i], err = newKEMPrekey(rand, id, kemOneTime, p.nextKEMOneTimeID+uint32(i)); err != nil {
			return err
		}
	}
	p.nextOneTimeID += uint32(n)
	p.nextKEMOneTimeID += uint32(n)
	p.oneTime = append(p.oneTime, opks...)
	p.kemOneTime = append(p.kemOneTime, kems...)
	return nil
}

func newKEMPrekey(rand io.Reader, id *keys.Identity, kind byte, kid uint32) (kemPrekey, error) {
	k := kemPrekey{id: kid}
	if _, err := io.ReadFull(rand, k.seed[:]); err != nil {
		return k, ErrRandom
	}
	dk, err := mlkem.NewDecapsulationKey768(k.seed[:])
	if err != nil {
		return k, ErrInvalidKey
	}
	k.dk = dk
	copy(k.sig[:], id.Sign(kemPrekeyDomain, kemPrekeyMessage(kind, kid, dk.EncapsulationKey().Bytes())))
	return k, nil
}

func (k *kemPrekey) decapsulationKey() (*mlkem.DecapsulationKey768, error) {
	if k.dk == nil {
		dk, err := mlkem.NewDecapsulationKey768(k.seed[:])
		if err != nil {
			return nil, ErrInvalidKey
		}
		k.dk = dk
	}
	return k.dk, nil
}

func signedPrekeyMessage(id uint32, pub []byte) []byte {
	m := binary.BigEndian.AppendUint32(make([]byte, 0, IDSize+KeySize), id)
	return append(m, pub...)
}

func kemPrekeyMessage(kind byte, id uint32, ek []byte) []byte {
	m := append(make([]byte, 0, 1+IDSize+KEMPublicKeySize), kind)
	m = binary.BigEndian.AppendUint32(m, id)
	return append(m, ek...)
}

// OneTimeCount returns how many initiations can still get a full set of
// one-time prekeys: the smaller of the X25519 and ML-KEM one-time counts.
func (p *Prekeys) OneTimeCount() int { return min(len(p.oneTime), len(p.kemOneTime)) }

// Identity returns the identity the prekeys are signed by.
func (p *Prekeys) Identity() keys.PublicIdentity { return p.identity }

// Bundle returns the public, signed bundle. With includeOneTime false it
// holds only the signed prekey and the last-resort KEM prekey.
func (p *Prekeys) Bundle(includeOneTime bool) *Bundle {
	b := &Bundle{
		Identity:        p.identity,
		SignedPrekeyID:  p.signed.id,
		SignedPrekeySig: p.signed.sig,
		KEMPrekeyID:     p.kem.id,
		KEMPrekeySig:    p.kem.sig,
	}
	// Any 32-byte X25519 scalar and 64-byte ML-KEM seed is valid, so these
	// derivations cannot fail.
	b.SignedPrekey = publicBytes(p.signed.privateKey())
	if dk, err := p.kem.decapsulationKey(); err == nil {
		b.KEMPrekey = dk.EncapsulationKey().Bytes()
	}
	if includeOneTime {
		for i := range p.oneTime {
			b.OneTimePrekeys = append(b.OneTimePrekeys, p.publicOneTime(i))
		}
		for i := range p.kemOneTime {
			b.KEMOneTimePrekeys = append(b.KEMOneTimePrekeys, p.publicKEMOneTime(i))
		}
	}
	b.verified = b.snapshot() // our own keys: nothing to verify
	return b
}

func (p *Prekeys) publicOneTime(i int) OneTimePrekey {
	o := &p.oneTime[i]
	return OneTimePrekey{ID: o.id, Key: publicBytes(o.privateKey())}
}

func (p *Prekeys) publicKEMOneTime(i int) KEMOneTimePrekey {
	k := &p.kemOneTime[i]
	out := KEMOneTimePrekey{ID: k.id, Signature: k.sig}
	if dk, err := k.decapsulationKey(); err == nil {
		out.Key = dk.EncapsulationKey().Bytes()
	}
	return out
}

// Private encoding (version 1), integers big-endian:
//
//	version (1) | identity (128) | next signed id (4) | next one-time id (4) | next KEM one-time id (4)
//	| signed prekey | last-resort KEM prekey | has previous (1) | previous signed prekey | previous KEM prekey
//	| one-time count (2) | one-time prekeys | KEM one-time count (2) | KEM one-time prekeys
//
// signed prekey = id (4) | private key (32) | signature (64);
// KEM prekey = id (4) | seed (64) | signature (64); one-time prekey = id (4) |
// private key (32). The previous pair is all zero when absent.
const (
	signedPrekeyEncSize  = IDSize + KeySize + SignatureSize
	kemPrekeyEncSize     = IDSize + KEMSeedSize + SignatureSize
	oneTimePrekeyEncSize = IDSize + KeySize
	prekeysFixedSize     = 1 + keys.PublicIdentitySize + 3*4 + 2*(signedPrekeyEncSize+kemPrekeyEncSize) + 1 + 2 + 2
	prekeysMaxSize       = prekeysFixedSize + MaxOneTimePrekeys*(oneTimePrekeyEncSize+kemPrekeyEncSize)
)

// Marshal returns the versioned private encoding. It is secret key material.
func (p *Prekeys) Marshal() []byte {
	b := make([]byte, 0, prekeysFixedSize+len(p.oneTime)*oneTimePrekeyEncSize+len(p.kemOneTime)*kemPrekeyEncSize)
	b = append(b, Version)
	b = append(b, p.identity.Marshal()...)
	b = binary.BigEndian.AppendUint32(b, p.nextSignedID)
	b = binary.BigEndian.AppendUint32(b, p.nextOneTimeID)
	b = binary.BigEndian.AppendUint32(b, p.nextKEMOneTimeID)
	b = appendSigned(b, &p.signed)
	b = appendKEM(b, &p.kem)
	if p.hasPrev {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = appendSigned(b, &p.prevSigned)
	b = appendKEM(b, &p.prevKEM)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.oneTime)))
	for _, o := range p.oneTime {
		b = binary.BigEndian.AppendUint32(b, o.id)
		b = append(b, o.priv[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.kemOneTime)))
	for i := range p.kemOneTime {
		b = appendKEM(b, &p.kemOneTime[i])
	}
	return b
}

func appendSigned(b []byte, s *signedPrekey) []byte {
	b = binary.BigEndian.AppendUint32(b, s.id)
	b = append(b, s.priv[:]...)
	return append(b, s.sig[:]...)
}

func appendKEM(b []byte, k *kemPrekey) []byte {
	b = binary.BigEndian.AppendUint32(b, k.id)
	b = append(b, k.seed[:]...)
	return append(b, k.sig[:]...)
}

// UnmarshalPrekeys decodes the output of Prekeys.Marshal. Signatures are not
// re-verified (the encoding is the owner's private storage); ids must be
// consistent with the id counters.
func UnmarshalPrekeys(b []byte) (*Prekeys, error) {
	if len(b) < 1 {
		return nil, ErrTruncated
	}
	if b[0] != Version {
		return nil, ErrVersion
	}
	if len(b) > prekeysMaxSize {
		return nil, ErrTooLarge
	}
	r := bincursor.New(b[1:], ErrTruncated)
	p := &Prekeys{}
	idb := r.Next(keys.PublicIdentitySize)
	p.nextSignedID, p.nextOneTimeID, p.nextKEMOneTimeID = r.U32(), r.U32(), r.U32()
	readSigned(r, &p.signed)
	readKEM(r, &p.kem)
	hasPrev := r.U8()
	readSigned(r, &p.prevSigned)
	readKEM(r, &p.prevKEM)
	nOne := int(r.U16())
	if r.Err == nil && nOne > MaxOneTimePrekeys {
		return nil, ErrMalformed
	}
	for range nOne {
		var o oneTimePrekey
		o.id = r.U32()
		copy(o.priv[:], r.Next(KeySize))
		if r.Err != nil {
			break
		}
		p.oneTime = append(p.oneTime, o)
	}
	nKEM := int(r.U16())
	if r.Err == nil && nKEM > MaxOneTimePrekeys {
		return nil, ErrMalformed
	}
	for range nKEM {
		var k kemPrekey
		readKEM(r, &k)
		if r.Err != nil {
			break
		}
		p.kemOneTime = append(p.kemOneTime, k)
	}
	if r.Err != nil {
		return nil, r.Err
	}
	if len(r.Rest()) != 0 {
		return nil, ErrTooLarge
	}
	var err error
	if p.identity, err = keys.ParsePublicIdentity(idb); err != nil {
		return nil, ErrMalformed
	}
	switch hasPrev {
	case 0:
		if p.prevSigned != (signedPrekey{}) || p.prevKEM != (kemPrekey{}) {
			return nil, ErrMalformed
		}
	case 1:
		p.hasPrev = true
		if p.prevSigned.id >= p.signed.id || p.prevKEM.id != p.prevSigned.id {
			return nil, ErrMalformed
		}
	default:
		return nil, ErrMalformed
	}
	if p.signed.id == 0 || p.signed.id >= p.nextSignedID || p.kem.id != p.signed.id {
		return nil, ErrMalformed
	}
	if !ascendingBelow(p.oneTime, func(o oneTimePrekey) uint32 { return o.id }, p.nextOneTimeID) ||
		!ascendingBelow(p.kemOneTime, func(k kemPrekey) uint32 { return k.id }, p.nextKEMOneTimeID) {
		return nil, ErrMalformed
	}
	return p, nil
}

// ascendingBelow reports whether the ids are non-zero, strictly ascending
// and below next (ids are issued from a counter starting at 1).
func ascendingBelow[T any](s []T, id func(T) uint32, next uint32) bool {
	prev := uint32(0)
	for _, x := range s {
		if id(x) <= prev || id(x) >= next {
			return false
		}
		prev = id(x)
	}
	return true
}

func readSigned(r *bincursor.Reader, s *signedPrekey) {
	s.id = r.U32()
	copy(s.priv[:], r.Next(KeySize))
	copy(s.sig[:], r.Next(SignatureSize))
}

func readKEM(r *bincursor.Reader, k *kemPrekey) {
	k.id = r.U32()
	copy(k.seed[:], r.Next(KEMSeedSize))
	copy(k.sig[:], r.Next(SignatureSize))
}

// findOneTime returns the index of the one-time prekey with the given id.
func findByID[T any](s []T, id func(T) uint32, want uint32) int {
	return slices.IndexFunc(s, func(x T) bool { return id(x) == want })
}
