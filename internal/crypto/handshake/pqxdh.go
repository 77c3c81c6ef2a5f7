package handshake

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"slices"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/bincursor"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
)

// Initiation is the initiator's first message: everything the responder
// needs to compute the shared secret.
type Initiation struct {
	Identity  keys.PublicIdentity
	Ephemeral [KeySize]byte

	SignedPrekeyID uint32
	// OneTimePrekeyID is meaningful only if HasOneTimePrekey.
	HasOneTimePrekey bool
	OneTimePrekeyID  uint32
	// KEMPrekeyID names a one-time KEM prekey if KEMOneTime, else the
	// last-resort KEM prekey.
	KEMOneTime    bool
	KEMPrekeyID   uint32
	KEMCiphertext []byte // KEMCiphertextSize bytes
}

const (
	initFlagOneTime    = 1 << 0
	initFlagKEMOneTime = 1 << 1
	initFlagsAll       = initFlagOneTime | initFlagKEMOneTime
)

// Marshal returns the InitiationSize-byte encoding of i (see InitiationSize).
func (i *Initiation) Marshal() []byte {
	out := make([]byte, 0, InitiationSize)
	out = append(out, Version)
	out = append(out, i.Identity.Marshal()...)
	out = append(out, i.Ephemeral[:]...)
	out = binary.BigEndian.AppendUint32(out, i.SignedPrekeyID)
	var flags byte
	opk := uint32(0)
	if i.HasOneTimePrekey {
		flags |= initFlagOneTime
		opk = i.OneTimePrekeyID
	}
	if i.KEMOneTime {
		flags |= initFlagKEMOneTime
	}
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, opk)
	out = binary.BigEndian.AppendUint32(out, i.KEMPrekeyID)
	return appendFixed(out, i.KEMCiphertext, KEMCiphertextSize)
}

// ParseInitiation decodes an Initiation and verifies the initiator's
// identity signature.
func ParseInitiation(b []byte) (*Initiation, error) {
	switch {
	case len(b) < 1:
		return nil, ErrTruncated
	case b[0] != Version:
		return nil, ErrVersion
	case len(b) < InitiationSize:
		return nil, ErrTruncated
	case len(b) > InitiationSize:
		return nil, ErrTooLarge
	}
	r := bincursor.New(b[1:], ErrTruncated)
	in := &Initiation{}
	idb := r.Next(keys.PublicIdentitySize)
	copy(in.Ephemeral[:], r.Next(KeySize))
	in.SignedPrekeyID = r.U32()
	flags := r.U8()
	in.OneTimePrekeyID = r.U32()
	in.KEMPrekeyID = r.U32()
	in.KEMCiphertext = append([]byte(nil), r.Next(KEMCiphertextSize)...)
	if flags&^initFlagsAll != 0 {
		return nil, ErrMalformed
	}
	in.HasOneTimePrekey = flags&initFlagOneTime != 0
	in.KEMOneTime = flags&initFlagKEMOneTime != 0
	if !in.HasOneTimePrekey && in.OneTimePrekeyID != 0 {
		return nil, ErrMalformed
	}
	var err error
	if in.Identity, err = keys.ParsePublicIdentity(idb); err != nil {
		return nil, ErrBadSignature
	}
	return in, nil
}

// secrets are the outputs of the PQXDH KDF.
type secrets struct {
	sk, hka, nhkb [KeySize]byte
}

// kdf computes HKDF-SHA-256(F || dhs... || ss) as described in the package
// comment.
func kdf(dhs [][]byte, ss []byte) secrets {
	ikm := make([]byte, 0, KeySize*(1+len(dhs))+len(ss))
	for range KeySize {
		ikm = append(ikm, 0xFF)
	}
	for _, d := range dhs {
		ikm = append(ikm, d...)
	}
	ikm = append(ikm, ss...)
	out, err := hkdf.Key(sha256.New, ikm, make([]byte, sha256.Size), kdfInfo, 3*KeySize)
	if err != nil {
		panic("handshake: hkdf: " + err.Error()) // fixed, valid length
	}
	var s secrets
	copy(s.sk[:], out)
	copy(s.hka[:], out[KeySize:])
	copy(s.nhkb[:], out[2*KeySize:])
	clear(ikm)
	clear(out)
	return s
}

func associatedData(initiator, responder keys.PublicIdentity) []byte {
	ad := make([]byte, 0, 2*keys.PublicIdentitySize)
	ad = append(ad, initiator.Marshal()...)
	return append(ad, responder.Marshal()...)
}

func dh(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, ErrInvalidKey
	}
	out, err := priv.ECDH(p)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return out, nil
}

// Initiate runs the initiator's side of PQXDH against bundle: it verifies the
// bundle's signatures, uses the first one-time prekey and the first one-time
// KEM prekey if present (else the last-resort KEM prekey), and returns the
// Initiation to send and a ratchet session that can Encrypt immediately.
// The signatures prove only that bundle.Identity issued the prekeys: the
// caller must check that bundle.Identity is the contact it means to reach
// (for instance by comparing safety numbers).
func Initiate(rand io.Reader, me *keys.Identity, bundle *Bundle, cfg ratchet.Config) (*Initiation, *ratchet.Session, error) {
	if bundle == nil || bundle.Identity.IsZero() {
		return nil, nil, ErrInvalidKey
	}
	if !bundle.signedPrekeyVerified() {
		if err := bundle.verifySignedPrekey(); err != nil {
			return nil, nil, err
		}
	}
	in := &Initiation{Identity: me.Public(), SignedPrekeyID: bundle.SignedPrekeyID}
	kemID, kemPub, kemSig, kind := bundle.KEMPrekeyID, bundle.KEMPrekey, bundle.KEMPrekeySig[:], byte(kemLastResort)
	if len(bundle.KEMOneTimePrekeys) > 0 {
		k := &bundle.KEMOneTimePrekeys[0]
		kemID, kemPub, kemSig, kind = k.ID, k.Key, k.Signature[:], kemOneTime
		in.KEMOneTime = true
	}
	in.KEMPrekeyID = kemID
	if !bundle.kemVerified(kind, kemID, kemPub, kemSig) {
		if err := bundle.verifyKEM(kind, kemID, kemPub, kemSig); err != nil {
			return nil, nil, err
		}
	}
	ek, err := kemKey(kemPub)
	if err != nil {
		return nil, nil, err
	}
	ikB, err := bundle.Identity.DHKey()
	if err != nil {
		return nil, nil, ErrInvalidKey
	}

	var ephBytes [KeySize]byte
	if _, err := io.ReadFull(rand, ephBytes[:]); err != nil {
		return nil, nil, ErrRandom
	}
	eph, err := ecdh.X25519().NewPrivateKey(ephBytes[:])
	clear(ephBytes[:])
	if err != nil {
		return nil, nil, ErrInvalidKey
	}
	copy(in.Ephemeral[:], eph.PublicKey().Bytes())

	spk, err := ecdh.X25519().NewPublicKey(bundle.SignedPrekey[:])
	if err != nil {
		return nil, nil, ErrInvalidKey
	}
	dh1, err := me.ECDH(spk)
	if err != nil {
		return nil, nil, ErrInvalidKey
	}
	dh2, err := eph.ECDH(ikB)
	if err != nil {
		return nil, nil, ErrInvalidKey
	}
	dh3, err := dh(eph, bundle.SignedPrekey[:])
	if err != nil {
		return nil, nil, err
	}
	dhs := [][]byte{dh1, dh2, dh3}
	if len(bundle.OneTimePrekeys) > 0 {
		o := bundle.OneTimePrekeys[0]
		dh4, err := dh(eph, o.Key[:])
		if err != nil {
			return nil, nil, err
		}
		dhs = append(dhs, dh4)
		in.HasOneTimePrekey, in.OneTimePrekeyID = true, o.ID
	}

	ss, ct, err := encapsulate(rand, ek)
	if err != nil {
		return nil, nil, err
	}
	in.KEMCiphertext = ct
	s := kdf(dhs, ss)
	for _, d := range dhs {
		clear(d)
	}
	clear(ss)

	ad := associatedData(in.Identity, bundle.Identity)
	sess, err := ratchet.NewInitiator(rand, s.sk, s.hka, s.nhkb, bundle.SignedPrekey, ad, cfg)
	if err != nil {
		return nil, nil, err
	}
	return in, sess, nil
}

// encapsulate runs ML-KEM-768 encapsulation; see the package comment.
func encapsulate(rand io.Reader, ek *mlkem.EncapsulationKey768) (ss, ct []byte, err error) {
	if rand == cryptorand.Reader {
		// The system generator is exactly what Encapsulate uses itself.
		ss, ct = ek.Encapsulate()
		return ss, ct, nil
	}
	var m [32]byte
	if _, err := io.ReadFull(rand, m[:]); err != nil {
		return nil, nil, ErrRandom
	}
	ss, ct, err = mlkemtest.Encapsulate768(ek, m[:])
	clear(m[:])
	if err != nil {
		// FIPS 140-only mode forbids caller-supplied randomness.
		ss, ct = ek.Encapsulate()
	}
	return ss, ct, nil
}

// Respond runs the responder's side of PQXDH for the initiation in, using
// the prekeys p of identity me, and returns a ratchet session ready to
// Decrypt the initiator's first message. It deletes the one-time prekeys the
// initiation used from p, or, for an initiation that used none, records it
// in the replay cache of its signed prekey; the caller persists p afterwards
// (ideally once the first message has decrypted). A second initiation naming
// a spent one-time prekey fails with ErrPrekeyUsed, a replayed one that used
// none with ErrReplayedInitiation. On error p is unchanged.
func Respond(me *keys.Identity, p *Prekeys, in *Initiation, cfg ratchet.Config) (*ratchet.Session, error) {
	if in == nil || p == nil || in.Identity.IsZero() {
		return nil, ErrInvalidKey
	}
	if !me.Public().Equal(p.identity) {
		return nil, ErrWrongIdentity
	}
	if len(in.KEMCiphertext) != KEMCiphertextSize {
		return nil, ErrMalformed
	}
	gi := findByID(p.gens, func(g generation) uint32 { return g.signed.id }, in.SignedPrekeyID)
	if gi < 0 {
		return nil, ErrUnknownPrekey
	}
	gen := &p.gens[gi]
	spk, lastResort := &gen.signed, &gen.kem
	// An initiation with no one-time prekey at all can only be told from
	// its replay by remembering it (PQXDH spec, section 4.2).
	var tag [ReplayTagSize]byte
	fallback := !in.HasOneTimePrekey && !in.KEMOneTime
	if fallback {
		tag = replayTag(in)
		if slices.Contains(gen.seen, tag) {
			return nil, ErrReplayedInitiation
		}
		if len(gen.seen) >= MaxReplayCache {
			return nil, ErrReplayCacheFull
		}
	}

	opkIndex := -1
	if in.HasOneTimePrekey {
		opkIndex = findByID(p.oneTime, func(o oneTimePrekey) uint32 { return o.id }, in.OneTimePrekeyID)
		if opkIndex < 0 {
			return nil, usedOrUnknown(in.OneTimePrekeyID, p.nextOneTimeID)
		}
	}
	var kem *kemPrekey
	kemIndex := -1
	if in.KEMOneTime {
		kemIndex = findByID(p.kemOneTime, func(k kemPrekey) uint32 { return k.id }, in.KEMPrekeyID)
		if kemIndex < 0 {
			return nil, usedOrUnknown(in.KEMPrekeyID, p.nextKEMOneTimeID)
		}
		kem = &p.kemOneTime[kemIndex]
	} else {
		if in.KEMPrekeyID != lastResort.id {
			return nil, ErrUnknownPrekey
		}
		kem = lastResort
	}

	spkPriv, err := spk.privateKey()
	if err != nil {
		return nil, err
	}
	ikA, err := in.Identity.DHKey()
	if err != nil {
		return nil, ErrInvalidKey
	}
	dh1, err := spkPriv.ECDH(ikA)
	if err != nil {
		return nil, ErrInvalidKey
	}
	eph, err := ecdh.X25519().NewPublicKey(in.Ephemeral[:])
	if err != nil {
		return nil, ErrInvalidKey
	}
	dh2, err := me.ECDH(eph)
	if err != nil {
		return nil, ErrInvalidKey
	}
	dh3, err := spkPriv.ECDH(eph)
	if err != nil {
		return nil, ErrInvalidKey
	}
	dhs := [][]byte{dh1, dh2, dh3}
	if opkIndex >= 0 {
		opk, err := p.oneTime[opkIndex].privateKey()
		if err != nil {
			return nil, err
		}
		dh4, err := opk.ECDH(eph)
		if err != nil {
			return nil, ErrInvalidKey
		}
		dhs = append(dhs, dh4)
	}
	dk, err := kem.decapsulationKey()
	if err != nil {
		return nil, err
	}
	ss, err := dk.Decapsulate(in.KEMCiphertext)
	if err != nil {
		return nil, ErrMalformed
	}
	s := kdf(dhs, ss)
	for _, d := range dhs {
		clear(d)
	}
	clear(ss)

	ad := associatedData(in.Identity, p.identity)
	sess, err := ratchet.NewResponder(s.sk, s.hka, s.nhkb, spkPriv, ad, cfg)
	if err != nil {
		return nil, err
	}
	if fallback {
		gen.seen = append(gen.seen, tag)
	}
	if opkIndex >= 0 {
		p.oneTime = slices.Delete(p.oneTime, opkIndex, opkIndex+1) // zeroes the freed slot
	}
	if kemIndex >= 0 {
		p.kemOneTime = slices.Delete(p.kemOneTime, kemIndex, kemIndex+1)
	}
	return sess, nil
}

func usedOrUnknown(id, next uint32) error {
	if id != 0 && id < next {
		return ErrPrekeyUsed
	}
	return ErrUnknownPrekey
}
