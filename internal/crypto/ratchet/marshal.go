package ratchet

import (
	"crypto/ecdh"
	"encoding/binary"
)

// State encoding (version 1), integers big-endian:
//
//	version (1) | flags (1) | MaxSkip (4) | MaxSkippedKeys (4)
//	| DHs private (32) | DHr | RK | CKs | CKr | HKs | HKr | NHKs | NHKr (32 each)
//	| Ns (4) | Nr (4) | PN (4) | AD length (2) | AD
//	| chain count (1) | chains: header key (32) | key count (4) | keys: N (4) | AEAD key (32) | nonce (12)
//
// Absent optional values (flag bit clear) are encoded as zero bytes, and the
// decoder insists on it, so every accepted encoding re-marshals identically.
const (
	flagDHr = 1 << iota
	flagCKs
	flagCKr
	flagHKs
	flagHKr
	flagsAll = flagDHr | flagCKs | flagCKr | flagHKs | flagHKr

	stateFixedSize = 1 + 1 + 4 + 4 + 9*KeySize + 3*4 + 2
	skippedKeySize = 4 + KeySize + BodyNonceSize
	chainHeadSize  = KeySize + 4
)

// Marshal returns the versioned encoding of the session. The result is secret
// key material; UnmarshalSession restores exactly this session.
func (s *Session) Marshal() []byte {
	c := &s.c
	size := stateFixedSize + len(s.ad) + 1
	for i := range s.skipped {
		size += chainHeadSize + len(s.skipped[i].keys)*skippedKeySize
	}
	b := make([]byte, 0, size)
	var flags byte
	for _, f := range []struct {
		set bool
		bit byte
	}{{c.hasDHr, flagDHr}, {c.hasCKs, flagCKs}, {c.hasCKr, flagCKr}, {c.hasHKs, flagHKs}, {c.hasHKr, flagHKr}} {
		if f.set {
			flags |= f.bit
		}
	}
	b = append(b, Version, flags)
	b = binary.BigEndian.AppendUint32(b, s.cfg.maxSkip())
	b = binary.BigEndian.AppendUint32(b, s.cfg.maxSkippedKeys())
	b = append(b, c.dhs.Bytes()...)
	for _, k := range []*[KeySize]byte{&c.dhr, &c.rk, &c.cks, &c.ckr, &c.hks, &c.hkr, &c.nhks, &c.nhkr} {
		b = append(b, k[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, c.ns)
	b = binary.BigEndian.AppendUint32(b, c.nr)
	b = binary.BigEndian.AppendUint32(b, c.pn)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.ad)))
	b = append(b, s.ad...)
	b = append(b, byte(len(s.skipped)))
	for i := range s.skipped {
		ch := &s.skipped[i]
		b = append(b, ch.hk[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(ch.keys)))
		for _, k := range ch.keys {
			b = binary.BigEndian.AppendUint32(b, k.n)
			b = append(b, k.mk.key[:]...)
			b = append(b, k.mk.nonce[:]...)
		}
	}
	return b
}

// reader is a bounds-checked cursor over an encoding.
type reader struct {
	b   []byte
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = ErrTruncated
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() byte {
	if b := r.next(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.next(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.next(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) key(k *[KeySize]byte) {
	if b := r.next(KeySize); b != nil {
		copy(k[:], b)
	}
}

// UnmarshalSession decodes the output of Session.Marshal.
func UnmarshalSession(b []byte) (*Session, error) {
	if len(b) < 1 {
		return nil, ErrTruncated
	}
	if b[0] != Version {
		return nil, ErrVersion
	}
	maxSize := stateFixedSize + MaxADSize + 1 + MaxSkippedChains*chainHeadSize + HardMaxSkippedKeys*skippedKeySize
	if len(b) > maxSize {
		return nil, ErrTooLarge
	}
	r := &reader{b: b[1:]}
	flags := r.u8()
	maxSkip, maxKeys := r.u32(), r.u32()
	var dhsPriv [KeySize]byte
	r.key(&dhsPriv)
	s := &Session{}
	c := &s.c
	for _, k := range []*[KeySize]byte{&c.dhr, &c.rk, &c.cks, &c.ckr, &c.hks, &c.hkr, &c.nhks, &c.nhkr} {
		r.key(k)
	}
	c.ns, c.nr, c.pn = r.u32(), r.u32(), r.u32()
	adLen := int(r.u16())
	if r.err == nil && adLen > MaxADSize {
		return nil, ErrTooLarge
	}
	s.ad = append([]byte{}, r.next(adLen)...)
	nChains := int(r.u8())
	if r.err != nil {
		return nil, r.err
	}
	if flags&^flagsAll != 0 || maxSkip < 1 || maxSkip > HardMaxSkip ||
		maxKeys < 1 || maxKeys > HardMaxSkippedKeys || nChains > MaxSkippedChains {
		return nil, ErrInvalidState
	}
	s.cfg = Config{MaxSkip: int(maxSkip), MaxSkippedKeys: int(maxKeys)}

	c.hasDHr = flags&flagDHr != 0
	c.hasCKs = flags&flagCKs != 0
	c.hasCKr = flags&flagCKr != 0
	c.hasHKs = flags&flagHKs != 0
	c.hasHKr = flags&flagHKr != 0
	// The initiator starts with DHr, CKs and HKs; the responder gains all
	// five at its first DH ratchet step. No other combination is reachable.
	if c.hasDHr != c.hasCKs || c.hasCKs != c.hasHKs || c.hasCKr != c.hasHKr || (c.hasCKr && !c.hasCKs) {
		return nil, ErrInvalidState
	}
	var zero [KeySize]byte
	for _, opt := range []struct {
		set bool
		k   *[KeySize]byte
	}{{c.hasDHr, &c.dhr}, {c.hasCKs, &c.cks}, {c.hasCKr, &c.ckr}, {c.hasHKs, &c.hks}, {c.hasHKr, &c.hkr}} {
		if !opt.set && *opt.k != zero {
			return nil, ErrInvalidState
		}
	}
	if c.ns > maxCounter+1 || c.nr > maxCounter+1 {
		return nil, ErrInvalidState
	}

	total := 0
	for range nChains {
		var ch skippedChain
		r.key(&ch.hk)
		nKeys := r.u32()
		if r.err != nil {
			return nil, r.err
		}
		total += int(nKeys)
		if total > int(maxKeys) {
			return nil, ErrInvalidState
		}
		if int(nKeys) > len(r.b)/skippedKeySize {
			return nil, ErrTruncated
		}
		ch.keys = make([]skippedKey, nKeys)
		for i := range ch.keys {
			ch.keys[i].n = r.u32()
			r.key(&ch.keys[i].mk.key)
			copy(ch.keys[i].mk.nonce[:], r.next(BodyNonceSize))
		}
		s.skipped = append(s.skipped, ch)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, ErrTooLarge
	}

	dhs, err := ecdh.X25519().NewPrivateKey(dhsPriv[:])
	if err != nil {
		return nil, ErrInvalidState
	}
	c.dhs = dhs
	copy(c.dhsPub[:], dhs.PublicKey().Bytes())
	return s, nil
}
