package handshake

import (
	"crypto/sha256"
	"errors"
	"io"
	"slices"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
)

// Prekey lifecycle, as Signal runs it:
//
//   - The signed prekey and the last-resort KEM prekey (one generation) are
//     replaced every Policy.RotateEvery (a week). A replaced generation still
//     answers initiations for Policy.Grace (30 days: as long as mail waits in
//     a mailbox), then Maintain deletes its private keys, and with them the
//     ability of a later key theft to open sessions begun on it.
//   - One-time prekeys are handed out one X25519 + ML-KEM pair per
//     requester (Claim), deleted when an initiation uses them, and
//     replenished when fewer than Policy.LowWater remain unclaimed.
//   - An initiation that uses no one-time prekey (its initiator could get
//     none) is remembered by its generation in a bounded replay cache
//     (MaxReplayCache tags of ReplayTagSize bytes, a hash of the initiator's
//     ephemeral key) and refused a second time with ErrReplayedInitiation.
//     The cache lives exactly as long as the generation's private keys: once
//     they are deleted no initiation naming them can be answered anyway. A
//     generation whose cache is three quarters full is rotated early; one
//     whose cache is full refuses further such initiations
//     (ErrReplayCacheFull) rather than forget one.
const (
	// MaxGenerations bounds the signed prekeys kept (the current one and
	// those in their grace period).
	MaxGenerations = 8
	// MaxReplayCache bounds the replay cache of each generation.
	MaxReplayCache = 1024
	// ReplayTagSize is the size of a replay cache entry.
	ReplayTagSize = 16

	// DefaultRotateEvery is Policy.RotateEvery's default, in seconds (a week).
	DefaultRotateEvery = 7 * 24 * 3600
	// DefaultGrace is Policy.Grace's default, in seconds (30 days).
	DefaultGrace = 30 * 24 * 3600
	// DefaultLowWater is Policy.LowWater's default.
	DefaultLowWater = 20
)

var (
	// ErrReplayedInitiation is returned by Respond for an initiation without
	// one-time prekeys that its signed prekey has already answered.
	ErrReplayedInitiation = errors.New("handshake: replayed initiation")
	// ErrReplayCacheFull is returned by Respond for an initiation without
	// one-time prekeys when its signed prekey's replay cache is full; the
	// initiator should fetch the current card or claim one-time prekeys.
	ErrReplayCacheFull = errors.New("handshake: signed prekey answers no more initiations without one-time prekeys")
	// ErrNoOneTimePrekeys is returned by Claim when every one-time prekey has
	// been handed out.
	ErrNoOneTimePrekeys = errors.New("handshake: no one-time prekeys left to hand out")
)

// replayTag identifies an initiation: EK_A. An initiation that decrypts
// under a tag already seen is the same initiator's same handshake (any
// other field changed would change the secrets).
func replayTag(in *Initiation) [ReplayTagSize]byte {
	h := sha256.Sum256(in.Ephemeral[:])
	var t [ReplayTagSize]byte
	copy(t[:], h[:])
	return t
}

// Policy is the schedule Maintain keeps. Zero fields take the defaults.
// Times are Unix seconds and durations seconds: the crypto core reads no
// clock and imports no time package (the caller passes now).
type Policy struct {
	RotateEvery int64 // seconds between rotations of the signed prekey
	Grace       int64 // seconds a replaced signed prekey still answers
	// LowWater: when fewer one-time prekey pairs remain unclaimed,
	// Maintain adds pairs up to Target (default MaxOneTimePrekeys).
	LowWater, Target int
}

func (pol Policy) withDefaults() Policy {
	if pol.RotateEvery <= 0 {
		pol.RotateEvery = DefaultRotateEvery
	}
	if pol.Grace <= 0 {
		pol.Grace = DefaultGrace
	}
	if pol.LowWater <= 0 {
		pol.LowWater = DefaultLowWater
	}
	if pol.Target <= 0 || pol.Target > MaxOneTimePrekeys {
		pol.Target = MaxOneTimePrekeys
	}
	pol.LowWater = min(pol.LowWater, pol.Target)
	return pol
}

// Maintenance reports what Maintain changed.
type Maintenance struct {
	Rotated bool // a new signed prekey: the card must be re-signed
	Expired int  // generations deleted after their grace period
	Added   int  // one-time prekey pairs added
	Changed bool // anything changed: persist the prekeys
}

// Maintain applies pol at now (Unix seconds, > 0): it rotates the signed prekey and last-resort
// KEM prekey when due, deletes generations past their grace period and
// replenishes one-time prekeys (dropping the oldest handed-out ones that
// were never used, if room is needed).
func (p *Prekeys) Maintain(rand io.Reader, id *keys.Identity, now int64, pol Policy) (Maintenance, error) {
	var m Maintenance
	if !id.Public().Equal(p.identity) {
		return m, ErrWrongIdentity
	}
	pol = pol.withDefaults()
	t := max(now, 1)
	for i := range p.gens {
		g := &p.gens[i]
		if g.created == 0 {
			g.created, m.Changed = t, true
		}
		if i > 0 && g.retired == 0 {
			g.retired, m.Changed = t, true
		}
	}
	cur := &p.gens[0]
	if t-cur.created >= pol.RotateEvery || len(cur.seen) >= MaxReplayCache*3/4 {
		if err := p.RotateAt(rand, id, t); err != nil {
			return m, err
		}
		m.Rotated, m.Changed = true, true
	}
	kept := p.gens[:1]
	for _, g := range p.gens[1:] {
		if t < g.retired+pol.Grace {
			kept = append(kept, g)
		} else {
			m.Expired++
		}
	}
	if m.Expired > 0 {
		clear(p.gens[len(kept):])
		p.gens, m.Changed = kept, true
	}
	if free := p.Unclaimed(); free < pol.LowWater {
		n := pol.Target - free
		// Make room by forgetting the oldest handed-out pairs: their
		// requesters did not use them (or will fall back to ErrPrekeyUsed).
		for len(p.oneTime)+n > MaxOneTimePrekeys && len(p.oneTime) > 0 && p.oneTime[0].id < p.claimedOneTime {
			p.oneTime = slices.Delete(p.oneTime, 0, 1)
		}
		for len(p.kemOneTime)+n > MaxOneTimePrekeys && len(p.kemOneTime) > 0 && p.kemOneTime[0].id < p.claimedKEM {
			p.kemOneTime = slices.Delete(p.kemOneTime, 0, 1)
		}
		n = min(n, MaxOneTimePrekeys-len(p.oneTime), MaxOneTimePrekeys-len(p.kemOneTime))
		if n > 0 {
			if err := p.AddOneTime(rand, id, n); err != nil {
				return m, err
			}
			m.Added, m.Changed = n, true
		}
	}
	return m, nil
}

// Unclaimed returns how many one-time prekey pairs Claim can still hand out.
func (p *Prekeys) Unclaimed() int {
	a, b := 0, 0
	for _, o := range p.oneTime {
		if o.id >= p.claimedOneTime {
			a++
		}
	}
	for _, k := range p.kemOneTime {
		if k.id >= p.claimedKEM {
			b++
		}
	}
	return min(a, b)
}

// Claim hands out the next one-time X25519 and ML-KEM prekeys, never handed
// out before, in a bundle with the current signed prekey: what one
// initiator needs. The X25519 one-time prekey is unsigned, as in PQXDH (the
// caller serves the bundle over a channel authenticated to this device). The
// caller persists p before sending the bundle, so that a crash cannot hand
// the same pair out twice.
func (p *Prekeys) Claim() (*Bundle, error) {
	oi := -1
	for i, o := range p.oneTime {
		if o.id >= p.claimedOneTime {
			oi = i
			break
		}
	}
	ki := -1
	for i, k := range p.kemOneTime {
		if k.id >= p.claimedKEM {
			ki = i
			break
		}
	}
	if oi < 0 || ki < 0 {
		return nil, ErrNoOneTimePrekeys
	}
	b := p.baseBundle()
	b.OneTimePrekeys = []OneTimePrekey{p.publicOneTime(oi)}
	b.KEMOneTimePrekeys = []KEMOneTimePrekey{p.publicKEMOneTime(ki)}
	b.verified = b.snapshot()
	p.claimedOneTime, p.claimedKEM = p.oneTime[oi].id+1, p.kemOneTime[ki].id+1
	return b, nil
}

// PrekeyStatus describes the prekeys for status displays.
type PrekeyStatus struct {
	SignedPrekeyID uint32
	SignedCreated  int64 // Unix seconds; zero if not yet stamped by Maintain
	Generations    int   // signed prekeys that answer initiations (current included)
	OneTime        int   // one-time prekey pairs held (handed out or not)
	Unclaimed      int   // one-time prekey pairs not yet handed out
}

// Status returns a summary of p (no key material).
func (p *Prekeys) Status() PrekeyStatus {
	s := PrekeyStatus{SignedPrekeyID: p.gens[0].signed.id, Generations: len(p.gens), OneTime: p.OneTimeCount(), Unclaimed: p.Unclaimed()}
	s.SignedCreated = p.gens[0].created
	return s
}
