package ratchet

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
)

const infoRoot = "samizdat/ratchet/v1/root"

// kdfRK is KDF_RK_HE: HKDF-SHA-256(salt = rk, ikm = dh) -> rk', ck, nhk.
func kdfRK(rk [KeySize]byte, dh []byte) (newRK, ck, nhk [KeySize]byte) {
	out, err := hkdf.Key(sha256.New, dh, rk[:], infoRoot, 3*KeySize)
	if err != nil {
		// Only possible for an output length above 255*32 bytes.
		panic("ratchet: hkdf: " + err.Error())
	}
	copy(newRK[:], out)
	copy(ck[:], out[KeySize:])
	copy(nhk[:], out[2*KeySize:])
	return
}

// kdfCK is KDF_CK: key = HMAC(ck, 0x01), nonce = HMAC(ck, 0x03)[:12],
// ck' = HMAC(ck, 0x02).
func kdfCK(ck [KeySize]byte) (mk messageKey, next [KeySize]byte) {
	h := hmac.New(sha256.New, ck[:])
	h.Write([]byte{1})
	h.Sum(mk.key[:0])
	h.Reset()
	h.Write([]byte{3})
	var nonce [sha256.Size]byte
	h.Sum(nonce[:0])
	copy(mk.nonce[:], nonce[:])
	h.Reset()
	h.Write([]byte{2})
	h.Sum(next[:0])
	return
}

// aead returns the ChaCha20-Poly1305 instance of a message key.
func (mk *messageKey) aead() cipher.AEAD {
	aead, err := chacha20poly1305.New(mk.key[:])
	if err != nil {
		panic("ratchet: chacha20poly1305: " + err.Error()) // key is 32 bytes
	}
	return aead
}

// headerAEAD returns the XChaCha20-Poly1305 instance of a header key.
func headerAEAD(hk *[KeySize]byte) cipher.AEAD {
	aead, err := chacha20poly1305.NewX(hk[:])
	if err != nil {
		panic("ratchet: xchacha20poly1305: " + err.Error()) // key is 32 bytes
	}
	return aead
}

type header struct {
	dh    [KeySize]byte
	pn, n uint32
}

// openHeader decrypts the header of msg (already length-checked) under aead.
func openHeader(aead cipher.AEAD, msg []byte) (header, bool) {
	var buf [HeaderPlaintextSize]byte
	nonce := msg[1 : 1+HeaderNonceSize]
	sealed := msg[1+HeaderNonceSize : HeaderSize]
	var h header
	if _, err := aead.Open(buf[:0], nonce, sealed, msg[:1]); err != nil {
		return h, false
	}
	copy(h.dh[:], buf[:KeySize])
	h.pn = binary.BigEndian.Uint32(buf[KeySize:])
	h.n = binary.BigEndian.Uint32(buf[KeySize+4:])
	return h, true
}

// bodyAD returns session AD || encrypted header, in a scratch buffer that
// is valid until the next call.
func (s *Session) bodyAD(msg []byte) []byte {
	if n := len(s.ad) + HeaderSize; cap(s.adBuf) < n {
		s.adBuf = make([]byte, 0, n)
	}
	ad := append(s.adBuf[:0], s.ad...)
	return append(ad, msg[:HeaderSize]...)
}

// Encrypt is RatchetEncryptHE. It reads a header nonce from rand and returns
// the message (Overhead+len(plaintext) bytes). On error the session is
// unchanged.
func (s *Session) Encrypt(rand io.Reader, plaintext []byte) ([]byte, error) {
	c := &s.c
	switch {
	case len(plaintext) > MaxPlaintextSize:
		return nil, ErrTooLarge
	case !c.hasCKs:
		return nil, ErrNoSendingChain
	case c.ns > maxCounter:
		return nil, ErrChainExhausted
	}
	out := make([]byte, HeaderSize, Overhead+len(plaintext))
	out[0] = Version
	nonce := out[1 : 1+HeaderNonceSize]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, ErrRandom
	}
	var hdr [HeaderPlaintextSize]byte
	copy(hdr[:], c.dhsPub[:])
	binary.BigEndian.PutUint32(hdr[KeySize:], c.pn)
	binary.BigEndian.PutUint32(hdr[KeySize+4:], c.ns)
	if s.hksAEAD == nil {
		s.hksAEAD = headerAEAD(&c.hks)
	}
	s.hksAEAD.Seal(out[1+HeaderNonceSize:1+HeaderNonceSize], nonce, hdr[:], out[:1])

	mk, ck := kdfCK(c.cks)
	out = mk.aead().Seal(out, mk.nonce[:], plaintext, s.bodyAD(out))

	c.cks = ck
	c.ns++
	return out, nil
}

// Decrypt is RatchetDecryptHE. rand is read only when the message starts a
// new receiving chain (a DH ratchet step generates a new key pair). On any
// error the session is unchanged.
func (s *Session) Decrypt(rand io.Reader, msg []byte) ([]byte, error) {
	switch {
	case len(msg) < Overhead:
		return nil, ErrTruncated
	case len(msg) > MaxMessageSize:
		return nil, ErrTooLarge
	case msg[0] != Version:
		return nil, ErrVersion
	}
	c := &s.c
	if c.hasHKr {
		if s.hkrAEAD == nil {
			s.hkrAEAD = headerAEAD(&c.hkr)
		}
		if h, ok := openHeader(s.hkrAEAD, msg); ok {
			return s.decryptCurrent(h, msg)
		}
	}
	if h, ok := openHeader(headerAEAD(&c.nhkr), msg); ok {
		return s.decryptNewChain(rand, h, msg)
	}
	for i := len(s.skipped) - 1; i >= 0; i-- {
		hk := &s.skipped[i].hk
		if c.hasHKr && *hk == c.hkr {
			continue
		}
		if h, ok := openHeader(headerAEAD(hk), msg); ok {
			return s.decryptSkipped(i, h, msg)
		}
	}
	return nil, ErrAuth
}

// decryptSkipped decrypts with a stored key of chain ci, if there is one.
func (s *Session) decryptSkipped(ci int, h header, msg []byte) ([]byte, error) {
	ch := &s.skipped[ci]
	for ki := range ch.keys {
		if ch.keys[ki].n != h.n {
			continue
		}
		pt, err := s.openBody(ch.keys[ki].mk, msg)
		if err != nil {
			return nil, err
		}
		ch.keys = slices.Delete(ch.keys, ki, ki+1) // zeroes the freed slot
		return pt, nil
	}
	return nil, ErrReplay
}

// decryptCurrent handles a header that opened under HKr.
func (s *Session) decryptCurrent(h header, msg []byte) ([]byte, error) {
	c := &s.c
	if h.dh != c.dhr || h.n > maxCounter {
		return nil, ErrAuth
	}
	if h.n < c.nr {
		for i := len(s.skipped) - 1; i >= 0; i-- {
			if s.skipped[i].hk == c.hkr {
				return s.decryptSkipped(i, h, msg)
			}
		}
		return nil, ErrReplay
	}
	if h.n-c.nr > s.cfg.maxSkip() {
		return nil, ErrTooManySkipped
	}
	ck, skipped := skipKeys(c.ckr, c.nr, h.n)
	mk, ck := kdfCK(ck)
	pt, err := s.openBody(mk, msg)
	if err != nil {
		return nil, err
	}
	c.ckr = ck
	c.nr = h.n + 1
	if len(skipped) > 0 {
		s.storeSkipped(c.hkr, skipped)
	}
	return pt, nil
}

// decryptNewChain handles a header that opened under NHKr: skip the rest of
// the current receiving chain, perform a DH ratchet step, then decrypt.
func (s *Session) decryptNewChain(rand io.Reader, h header, msg []byte) ([]byte, error) {
	old := s.c
	maxSkip := s.cfg.maxSkip()
	if h.n > maxCounter || h.n > maxSkip {
		if h.n > maxCounter {
			return nil, ErrAuth
		}
		return nil, ErrTooManySkipped
	}
	var oldSkipped []skippedKey
	if old.hasCKr && h.pn > old.nr {
		if h.pn-old.nr > maxSkip {
			return nil, ErrTooManySkipped
		}
		_, oldSkipped = skipKeys(old.ckr, old.nr, h.pn)
	}

	// DHRatchetHE on a copy of the state.
	n := old
	n.pn = old.ns
	n.ns, n.nr = 0, 0
	n.hks, n.hasHKs = old.nhks, true
	n.hkr, n.hasHKr = old.nhkr, true
	n.dhr, n.hasDHr = h.dh, true
	dh, err := computeDH(old.dhs, n.dhr)
	if err != nil {
		return nil, err
	}
	n.rk, n.ckr, n.nhkr = kdfRK(old.rk, dh)
	n.hasCKr = true
	if n.dhs, err = generateDH(rand); err != nil {
		return nil, err
	}
	copy(n.dhsPub[:], n.dhs.PublicKey().Bytes())
	if dh, err = computeDH(n.dhs, n.dhr); err != nil {
		return nil, err
	}
	n.rk, n.cks, n.nhks = kdfRK(n.rk, dh)
	n.hasCKs = true

	ck, newSkipped := skipKeys(n.ckr, 0, h.n)
	mk, ck := kdfCK(ck)
	pt, err := s.openBody(mk, msg)
	if err != nil {
		return nil, err
	}
	n.ckr = ck
	n.nr = h.n + 1

	s.c = n
	s.hksAEAD, s.hkrAEAD = nil, nil
	if old.hasHKr {
		s.storeSkipped(old.hkr, oldSkipped)
	}
	if len(newSkipped) > 0 {
		s.storeSkipped(n.hkr, newSkipped)
	}
	return pt, nil
}

// skipKeys derives the message keys for counters [from, until) from ck.
func skipKeys(ck [KeySize]byte, from, until uint32) ([KeySize]byte, []skippedKey) {
	if until <= from {
		return ck, nil
	}
	keys := make([]skippedKey, 0, until-from)
	for i := from; i < until; i++ {
		var mk messageKey
		mk, ck = kdfCK(ck)
		keys = append(keys, skippedKey{n: i, mk: mk})
	}
	return ck, keys
}

func (s *Session) openBody(mk messageKey, msg []byte) ([]byte, error) {
	body := msg[HeaderSize:]
	pt, err := mk.aead().Open(make([]byte, 0, len(body)-TagSize), mk.nonce[:], body, s.bodyAD(msg))
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// storeSkipped appends keys to the chain of header key hk (creating the
// chain entry even when keys is empty, for replay detection) and enforces
// the chain and key bounds, evicting the oldest first.
func (s *Session) storeSkipped(hk [KeySize]byte, keys []skippedKey) {
	if last := len(s.skipped) - 1; last >= 0 && s.skipped[last].hk == hk {
		s.skipped[last].keys = append(s.skipped[last].keys, keys...)
	} else {
		s.skipped = append(s.skipped, skippedChain{hk: hk, keys: keys})
	}
	if extra := len(s.skipped) - MaxSkippedChains; extra > 0 {
		s.skipped = slices.Delete(s.skipped, 0, extra)
	}
	total := s.SkippedKeys()
	limit := int(s.cfg.maxSkippedKeys())
	for i := 0; total > limit && i < len(s.skipped); i++ {
		ch := &s.skipped[i]
		drop := min(total-limit, len(ch.keys))
		ch.keys = slices.Delete(ch.keys, 0, drop)
		total -= drop
	}
}
