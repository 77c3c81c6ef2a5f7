package handshake

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"encoding/binary"
	"io"
	"slices"

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
//
// It keeps the current signed prekey and last-resort KEM prekey and the
// ones they replaced (generations), so that initiations made from an older
// card still work during a grace period (see Maintain), and for each
// generation a bounded replay cache of the initiations it accepted without
// a one-time prekey. One-time prekeys are handed out one pair per
// requester (Claim) and deleted when an initiation uses them.
type Prekeys struct {
	identity keys.PublicIdentity

	nextSignedID, nextOneTimeID, nextKEMOneTimeID uint32
	// One-time prekeys with ids below these have been handed out by Claim.
	claimedOneTime, claimedKEM uint32

	// gens[0] is the current generation; the others were replaced,
	// newest first.
	gens []generation

	oneTime    []oneTimePrekey
	kemOneTime []kemPrekey
}

// generation is one signed prekey with its last-resort KEM prekey (same id).
type generation struct {
	signed signedPrekey
	kem    kemPrekey
	// created and retired are Unix seconds (retired 0: current); 0 means
	// unknown (state from before rotation was scheduled, or Rotate without
	// a time): Maintain stamps it with its now.
	created, retired int64
	// seen holds replayTag(EK_A) of every initiation this generation
	// accepted without any one-time prekey, so that it is accepted once.
	seen [][ReplayTagSize]byte
}

// NewPrekeys creates a signed prekey, a signed last-resort ML-KEM-768 prekey
// and oneTime one-time prekeys of each kind (X25519 and ML-KEM-768).
func NewPrekeys(rand io.Reader, id *keys.Identity, oneTime int) (*Prekeys, error) {
	if oneTime < 0 || oneTime > MaxOneTimePrekeys {
		return nil, ErrTooLarge
	}
	p := &Prekeys{identity: id.Public(), nextSignedID: 1, nextOneTimeID: 1, nextKEMOneTimeID: 1, claimedOneTime: 1, claimedKEM: 1}
	if err := p.Rotate(rand, id); err != nil {
		return nil, err
	}
	if err := p.AddOneTime(rand, id, oneTime); err != nil {
		return nil, err
	}
	return p, nil
}

// Rotate replaces the signed prekey and the last-resort KEM prekey with new
// ones, with no time: see RotateAt.
func (p *Prekeys) Rotate(rand io.Reader, id *keys.Identity) error {
	return p.RotateAt(rand, id, 0)
}

// RotateAt replaces the signed prekey and the last-resort KEM prekey with
// new ones created at now; the replaced pair stays usable until Maintain
// drops it (a grace period after now), or until MaxGenerations newer ones
// exist. now is in Unix seconds; zero leaves the times for the next
// Maintain to stamp.
func (p *Prekeys) RotateAt(rand io.Reader, id *keys.Identity, now int64) error {
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
	t := max(now, 0)
	if len(p.gens) > 0 {
		p.gens[0].retired = t
	}
	p.gens = slices.Insert(p.gens, 0, generation{signed: spk, kem: kem, created: t})
	if len(p.gens) > MaxGenerations {
		clear(p.gens[MaxGenerations:])
		p.gens = p.gens[:MaxGenerations]
	}
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
	b := p.baseBundle()
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

// baseBundle is the bundle of the current generation, without one-time
// prekeys and not yet marked verified.
func (p *Prekeys) baseBundle() *Bundle {
	g := &p.gens[0]
	b := &Bundle{
		Identity:        p.identity,
		SignedPrekeyID:  g.signed.id,
		SignedPrekeySig: g.signed.sig,
		KEMPrekeyID:     g.kem.id,
		KEMPrekeySig:    g.kem.sig,
	}
	// Any 32-byte X25519 scalar and 64-byte ML-KEM seed is valid, so these
	// derivations cannot fail.
	b.SignedPrekey = publicBytes(g.signed.privateKey())
	if dk, err := g.kem.decapsulationKey(); err == nil {
		b.KEMPrekey = dk.EncapsulationKey().Bytes()
	}
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

// findOneTime returns the index of the one-time prekey with the given id.
func findByID[T any](s []T, id func(T) uint32, want uint32) int {
	return slices.IndexFunc(s, func(x T) bool { return id(x) == want })
}
