package handshake

import (
	"encoding/binary"
	"math"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/bincursor"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
)

// Private encoding (version 2), integers big-endian:
//
//	version (1) = 2 | identity (128) | next signed id (4) | next one-time id (4) | next KEM one-time id (4)
//	| claimed one-time id (4) | claimed KEM one-time id (4)
//	| generation count (1) | generations, current first
//	| one-time count (2) | one-time prekeys | KEM one-time count (2) | KEM one-time prekeys
//
// generation = signed prekey | last-resort KEM prekey | created (8) |
// retired (8) | replay tag count (2) | replay tags (16 each);
// signed prekey = id (4) | private key (32) | signature (64);
// KEM prekey = id (4) | seed (64) | signature (64); one-time prekey = id (4) |
// private key (32). Times are Unix seconds, 0 when unknown.
//
// Version 1 (before rotation was scheduled) is still read:
//
//	version (1) = 1 | identity (128) | next signed id (4) | next one-time id (4) | next KEM one-time id (4)
//	| signed prekey | last-resort KEM prekey | has previous (1) | previous signed prekey | previous KEM prekey
//	| one-time count (2) | one-time prekeys | KEM one-time count (2) | KEM one-time prekeys
//
// with the previous pair all zero when absent; no one-time prekey of it had
// been handed out.
const (
	prekeysVersion = 2

	signedPrekeyEncSize  = IDSize + KeySize + SignatureSize
	kemPrekeyEncSize     = IDSize + KEMSeedSize + SignatureSize
	oneTimePrekeyEncSize = IDSize + KeySize
	generationFixedSize  = signedPrekeyEncSize + kemPrekeyEncSize + 8 + 8 + 2
	prekeysFixedSize     = 1 + keys.PublicIdentitySize + 5*4 + 1 + 2 + 2
	prekeysMaxSize       = prekeysFixedSize + MaxGenerations*(generationFixedSize+MaxReplayCache*ReplayTagSize) +
		MaxOneTimePrekeys*(oneTimePrekeyEncSize+kemPrekeyEncSize)
	prekeysV1FixedSize = 1 + keys.PublicIdentitySize + 3*4 + 2*(signedPrekeyEncSize+kemPrekeyEncSize) + 1 + 2 + 2
	prekeysV1MaxSize   = prekeysV1FixedSize + MaxOneTimePrekeys*(oneTimePrekeyEncSize+kemPrekeyEncSize)
	// maxUnixTime keeps stored times where time arithmetic cannot overflow.
	maxUnixTime = math.MaxInt64 >> 2
)

// Marshal returns the versioned private encoding. It is secret key material.
func (p *Prekeys) Marshal() []byte {
	size := prekeysFixedSize + len(p.oneTime)*oneTimePrekeyEncSize + len(p.kemOneTime)*kemPrekeyEncSize
	for _, g := range p.gens {
		size += generationFixedSize + len(g.seen)*ReplayTagSize
	}
	b := make([]byte, 0, size)
	b = append(b, prekeysVersion)
	b = append(b, p.identity.Marshal()...)
	for _, v := range []uint32{p.nextSignedID, p.nextOneTimeID, p.nextKEMOneTimeID, p.claimedOneTime, p.claimedKEM} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = append(b, byte(len(p.gens)))
	for i := range p.gens {
		g := &p.gens[i]
		b = appendSigned(b, &g.signed)
		b = appendKEM(b, &g.kem)
		b = binary.BigEndian.AppendUint64(b, uint64(g.created))
		b = binary.BigEndian.AppendUint64(b, uint64(g.retired))
		b = binary.BigEndian.AppendUint16(b, uint16(len(g.seen)))
		for _, t := range g.seen {
			b = append(b, t[:]...)
		}
	}
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

// UnmarshalPrekeys decodes the output of Prekeys.Marshal (or of version 1).
// Signatures are not re-verified (the encoding is the owner's private
// storage); ids must be consistent with the id counters.
func UnmarshalPrekeys(b []byte) (*Prekeys, error) {
	if len(b) < 1 {
		return nil, ErrTruncated
	}
	switch b[0] {
	case 1:
		return unmarshalPrekeysV1(b)
	case prekeysVersion:
	default:
		return nil, ErrVersion
	}
	if len(b) > prekeysMaxSize {
		return nil, ErrTooLarge
	}
	r := bincursor.New(b[1:], ErrTruncated)
	p := &Prekeys{}
	idb := r.Next(keys.PublicIdentitySize)
	p.nextSignedID, p.nextOneTimeID, p.nextKEMOneTimeID = r.U32(), r.U32(), r.U32()
	p.claimedOneTime, p.claimedKEM = r.U32(), r.U32()
	nGen := int(r.U8())
	if r.Err == nil && (nGen < 1 || nGen > MaxGenerations) {
		return nil, ErrMalformed
	}
	for range nGen {
		var g generation
		readSigned(r, &g.signed)
		readKEM(r, &g.kem)
		g.created, g.retired = readTime(r), readTime(r)
		n := int(r.U16())
		if r.Err == nil && n > MaxReplayCache {
			return nil, ErrMalformed
		}
		for range n {
			var t [ReplayTagSize]byte
			if copy(t[:], r.Next(ReplayTagSize)) != ReplayTagSize {
				break
			}
			g.seen = append(g.seen, t)
		}
		if r.Err != nil {
			break
		}
		if g.created < 0 || g.retired < 0 {
			return nil, ErrMalformed
		}
		p.gens = append(p.gens, g)
	}
	if err := readOneTime(r, p); err != nil {
		return nil, err
	}
	if len(r.Rest()) != 0 {
		return nil, ErrTooLarge
	}
	var err error
	if p.identity, err = keys.ParsePublicIdentity(idb); err != nil {
		return nil, ErrMalformed
	}
	if p.gens[0].retired != 0 {
		return nil, ErrMalformed
	}
	for i, g := range p.gens {
		if g.signed.id == 0 || g.signed.id >= p.nextSignedID || g.kem.id != g.signed.id ||
			(i > 0 && g.signed.id >= p.gens[i-1].signed.id) {
			return nil, ErrMalformed
		}
	}
	if p.claimedOneTime == 0 || p.claimedOneTime > p.nextOneTimeID || p.claimedKEM == 0 || p.claimedKEM > p.nextKEMOneTimeID {
		return nil, ErrMalformed
	}
	if err := p.checkOneTime(); err != nil {
		return nil, err
	}
	return p, nil
}

// readTime reads a stored time, or -1 (rejected) if out of range.
func readTime(r *bincursor.Reader) int64 {
	v := r.Next(8)
	if v == nil {
		return 0
	}
	t := binary.BigEndian.Uint64(v)
	if t > maxUnixTime {
		return -1
	}
	return int64(t)
}

func readOneTime(r *bincursor.Reader, p *Prekeys) error {
	nOne := int(r.U16())
	if r.Err == nil && nOne > MaxOneTimePrekeys {
		return ErrMalformed
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
		return ErrMalformed
	}
	for range nKEM {
		var k kemPrekey
		readKEM(r, &k)
		if r.Err != nil {
			break
		}
		p.kemOneTime = append(p.kemOneTime, k)
	}
	return r.Err
}

func (p *Prekeys) checkOneTime() error {
	if !ascendingBelow(p.oneTime, func(o oneTimePrekey) uint32 { return o.id }, p.nextOneTimeID) ||
		!ascendingBelow(p.kemOneTime, func(k kemPrekey) uint32 { return k.id }, p.nextKEMOneTimeID) {
		return ErrMalformed
	}
	return nil
}

// unmarshalPrekeysV1 reads the version 1 encoding into the current form:
// the times of its generations are unknown (Maintain stamps them).
func unmarshalPrekeysV1(b []byte) (*Prekeys, error) {
	if len(b) > prekeysV1MaxSize {
		return nil, ErrTooLarge
	}
	r := bincursor.New(b[1:], ErrTruncated)
	p := &Prekeys{claimedOneTime: 1, claimedKEM: 1}
	idb := r.Next(keys.PublicIdentitySize)
	p.nextSignedID, p.nextOneTimeID, p.nextKEMOneTimeID = r.U32(), r.U32(), r.U32()
	var cur, prev generation
	readSigned(r, &cur.signed)
	readKEM(r, &cur.kem)
	hasPrev := r.U8()
	readSigned(r, &prev.signed)
	readKEM(r, &prev.kem)
	if err := readOneTime(r, p); err != nil {
		return nil, err
	}
	if len(r.Rest()) != 0 {
		return nil, ErrTooLarge
	}
	var err error
	if p.identity, err = keys.ParsePublicIdentity(idb); err != nil {
		return nil, ErrMalformed
	}
	p.gens = []generation{cur}
	switch hasPrev {
	case 0:
		if prev.signed != (signedPrekey{}) || prev.kem != (kemPrekey{}) {
			return nil, ErrMalformed
		}
	case 1:
		if prev.signed.id == 0 || prev.signed.id >= cur.signed.id || prev.kem.id != prev.signed.id {
			return nil, ErrMalformed
		}
		p.gens = append(p.gens, prev)
	default:
		return nil, ErrMalformed
	}
	if cur.signed.id == 0 || cur.signed.id >= p.nextSignedID || cur.kem.id != cur.signed.id {
		return nil, ErrMalformed
	}
	if p.nextOneTimeID == 0 || p.nextKEMOneTimeID == 0 {
		return nil, ErrMalformed
	}
	if err := p.checkOneTime(); err != nil {
		return nil, err
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
