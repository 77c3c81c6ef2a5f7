package ratchet

import (
	"crypto/ecdh"
	"encoding/binary"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/bincursor"
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

func readKey(r *bincursor.Reader, k *[KeySize]byte) {
	if b := r.Next(KeySize); b != nil {
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
	r := bincursor.New(b[1:], ErrTruncated)
	flags := r.U8()
	maxSkip, maxKeys := r.U32(), r.U32()
	var dhsPriv [KeySize]byte
	readKey(r, &dhsPriv)
	s := &Session{}
	c := &s.c
	for _, k := range []*[KeySize]byte{&c.dhr, &c.rk, &c.cks, &c.ckr, &c.hks, &c.hkr, &c.nhks, &c.nhkr} {
		readKey(r, k)
	}
	c.ns, c.nr, c.pn = r.U32(), r.U32(), r.U32()
	adLen := int(r.U16())
	if r.Err == nil && adLen > MaxADSize {
		return nil, ErrTooLarge
	}
	s.ad = append([]byte{}, r.Next(adLen)...)
	nChains := int(r.U8())
	if r.Err != nil {
		return nil, r.Err
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
		readKey(r, &ch.hk)
		nKeys := r.U32()
		if r.Err != nil {
			return nil, r.Err
		}
		total += int(nKeys)
		if total > int(maxKeys) {
			return nil, ErrInvalidState
		}
		if int(nKeys) > len(r.Rest())/skippedKeySize {
			return nil, ErrTruncated
		}
		ch.keys = make([]skippedKey, nKeys)
		for i := range ch.keys {
			ch.keys[i].n = r.U32()
			readKey(r, &ch.keys[i].mk.key)
			copy(ch.keys[i].mk.nonce[:], r.Next(BodyNonceSize))
		}
		s.skipped = append(s.skipped, ch)
	}
	if r.Err != nil {
		return nil, r.Err
	}
	if len(r.Rest()) != 0 {
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
