package messenger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// Prekeys as Signal runs them (handshake/rotate.go has the rules):
//
//   - At start and every prekeyCheckInterval (10 min) the messenger applies
//     Config.Prekeys (weekly rotation of the signed and last-resort KEM
//     prekeys, 30 days of grace for the replaced ones, one-time prekeys
//     replenished below a low-water mark). A rotation re-signs our card;
//     contacts get it with our next message to them (cardsent.<id>), and
//     the DHT record is republished.
//   - One-time prekeys are handed out by this device over
//     /samizdat/prekey/1, one X25519 + ML-KEM pair per request (a request
//     frame holding the version byte; the answer is a frame holding a
//     handshake bundle with exactly one one-time prekey of each kind, or an
//     empty frame when there is none to give). Requests are rate-limited
//     per peer. The pair is marked handed out in the store before it is
//     sent, so no two requesters ever get the same one.
//   - An initiator claims a pair when it adds a contact or sees the
//     contact's device connect, while it has no session with it, and
//     uses it for the next session it starts (in memory: a claim lost to a
//     restart or a rolled-back transaction only means a fallback). Without a
//     claim (Send waits up to claimWait for one in flight) it uses the
//     card's signed and last-resort prekeys, as PQXDH
//     allows; the responder's replay cache then stops replays.

// ProtocolPrekey is the stream protocol that hands out one-time prekeys.
const ProtocolPrekey = "/samizdat/prekey/1"

const (
	prekeyProtoVersion = 1
	// prekeyCheckInterval is how often the schedule is applied: often
	// enough that a replay cache filling up is rotated early in time.
	prekeyCheckInterval = 10 * time.Minute
	claimTimeout        = 10 * time.Second
	// claimWait bounds how long Send waits for a claim in flight to the
	// contact it writes to (the first message after adding a contact).
	claimWait = 2 * time.Second
	// maxClaimFrame bounds a claim answer: a bundle with one one-time
	// prekey of each kind.
	maxClaimFrame = handshake.MaxBundleSize
)

// prekeyState is the messenger's prekey service state.
type prekeyState struct {
	mu       sync.Mutex
	ctx      context.Context // Start's context; nil before Start
	claims   map[int64]*handshake.Bundle
	claiming map[int64]chan struct{} // closed when the claim ends
	limit    initLimiter             // claims served, per requesting peer (same rates as new sessions)
}

// startPrekeys runs the first maintenance, serves /samizdat/prekey/1 and
// keeps the schedule. Called by Start.
func (m *Messenger) startPrekeys(ctx context.Context) {
	if err := m.maintainPrekeys(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("prekeyMaintenanceFailed", "err", err)
	}
	m.pk.mu.Lock()
	m.pk.ctx = ctx
	m.pk.mu.Unlock()
	if m.tr != nil {
		m.tr.Handle(ProtocolPrekey, m.handlePrekeyStream)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if m.tr != nil {
			defer m.tr.Unhandle(ProtocolPrekey)
		}
		t := time.NewTicker(prekeyCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := m.maintainPrekeys(ctx); err != nil && ctx.Err() == nil {
					m.log.Warn("prekeyMaintenanceFailed", "err", err)
				}
			}
		}
	}()
}

// maintainPrekeys applies the prekey schedule at m.now(), in one store
// transaction (receives consume prekeys in theirs), and re-signs our card
// after a rotation.
func (m *Messenger) maintainPrekeys(ctx context.Context) error {
	var res handshake.Maintenance
	var pk *handshake.Prekeys
	now := m.now()
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobPrekeys)
		if err != nil {
			return err
		}
		if pk, err = handshake.UnmarshalPrekeys(b); err != nil {
			return err
		}
		if res, err = pk.Maintain(m.rand, m.id, now.Unix(), m.cfg.Prekeys); err != nil {
			return err
		}
		if !res.Changed {
			return nil
		}
		return tx.PutBlob(blobPrekeys, pk.Marshal())
	})
	if err != nil {
		return err
	}
	m.prekeyMu.Lock()
	m.prekeys = pk
	m.prekeyMu.Unlock()
	if res.Rotated || res.Expired > 0 || res.Added > 0 {
		m.log.Info("prekeysMaintained", "rotated", res.Rotated, "expired", res.Expired, "added", res.Added)
	}
	if !res.Rotated {
		return nil
	}
	// Our card names the signed prekey: make the next card() re-sign it
	// (a new serial, so contacts are sent it), and do it now so that the
	// DHT record follows.
	m.cardMu.Lock()
	m.cardAddr = ""
	m.cardMu.Unlock()
	_, err = m.card(ctx)
	return err
}

// PrekeyStatus returns a summary of our prekeys as stored (no key
// material).
func (m *Messenger) PrekeyStatus(ctx context.Context) (handshake.PrekeyStatus, error) {
	var st handshake.PrekeyStatus
	err := m.st.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobPrekeys)
		if err != nil {
			return err
		}
		pk, err := handshake.UnmarshalPrekeys(b)
		if err != nil {
			return err
		}
		st = pk.Status()
		return nil
	})
	return st, err
}

// handlePrekeyStream serves one claim: a request frame, an answer frame.
func (m *Messenger) handlePrekeyStream(s p2p.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(m.cfg.StreamTimeout))
	req, err := wire.ReadFrame(s)
	if err != nil || len(req) != 1 || req[0] != prekeyProtoVersion {
		_ = s.Reset()
		return
	}
	m.pk.mu.Lock()
	ctx := m.pk.ctx
	m.pk.mu.Unlock()
	var out []byte
	if ctx != nil && m.pk.limit.allow(s.RemotePeer(), m.now()) {
		out = m.claimOwn(ctx)
	}
	if err := wire.WriteFrame(s, out); err != nil {
		_ = s.Reset()
	}
}

// claimOwn hands out one pair of our one-time prekeys, persisted as
// handed out before it is returned; nil if there is none.
func (m *Messenger) claimOwn(ctx context.Context) []byte {
	var out []byte
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobPrekeys)
		if err != nil {
			return err
		}
		pk, err := handshake.UnmarshalPrekeys(b)
		if err != nil {
			return err
		}
		bundle, err := pk.Claim()
		if err != nil {
			return err
		}
		out = bundle.Marshal()
		return tx.PutBlob(blobPrekeys, pk.Marshal())
	})
	if err != nil {
		if !errors.Is(err, handshake.ErrNoOneTimePrekeys) {
			m.log.Warn("prekeyClaimFailed", "err", err)
		}
		return nil
	}
	return out
}

// claimSoon claims one-time prekeys of contact cid in the background, if
// we have no session with it and no claim yet.
func (m *Messenger) claimSoon(cid int64) {
	m.pk.mu.Lock()
	ctx := m.pk.ctx
	busy := m.pk.claiming[cid] != nil || m.pk.claims[cid] != nil
	if ctx == nil || m.tr == nil || busy || ctx.Err() != nil {
		m.pk.mu.Unlock()
		return
	}
	if m.pk.claiming == nil {
		m.pk.claiming = map[int64]chan struct{}{}
	}
	done := make(chan struct{})
	m.pk.claiming[cid] = done
	m.wg.Add(1)
	m.pk.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer func() {
			m.pk.mu.Lock()
			delete(m.pk.claiming, cid)
			m.pk.mu.Unlock()
			close(done)
		}()
		cctx, cancel := context.WithTimeout(ctx, claimTimeout)
		defer cancel()
		if err := m.claimFrom(cctx, cid); err != nil {
			m.log.Debug("prekeyClaimSkipped", "contact", cid, "err", err)
		}
	}()
}

// awaitClaim waits (at most claimWait) for a claim in flight to the
// contact ref names, so that the first message after adding a contact
// starts its session with the claimed one-time prekeys.
func (m *Messenger) awaitClaim(ctx context.Context, ref string) {
	m.pk.mu.Lock()
	n := len(m.pk.claiming)
	m.pk.mu.Unlock()
	if n == 0 {
		return
	}
	var cid int64
	err := m.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err == nil {
			cid = c.ID
		}
		return err
	})
	if err != nil {
		return
	}
	m.pk.mu.Lock()
	done := m.pk.claiming[cid]
	m.pk.mu.Unlock()
	if done == nil {
		return
	}
	t := time.NewTimer(claimWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	case <-m.closed:
	}
}

// errHaveSession: no claim is needed, a session exists.
var errHaveSession = errors.New("session exists")

// claimFrom asks contact cid's device for one pair of one-time prekeys and
// keeps them for the next session started with it.
func (m *Messenger) claimFrom(ctx context.Context, cid int64) error {
	var c *store.Contact
	var has bool
	err := m.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if c, err = tx.Contact(cid); err != nil {
			return err
		}
		rec, err := loadRecord(tx, cid)
		has = err == nil && len(rec.Sessions) > 0
		return err
	})
	if err != nil {
		return err
	}
	if has {
		return errHaveSession
	}
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil {
		return err
	}
	if c.PeerID == "" {
		return ErrNotReachable
	}
	s, err := m.tr.OpenStream(ctx, c.PeerID, ProtocolPrekey)
	if err != nil {
		return err
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	if err := wire.WriteFrame(s, []byte{prekeyProtoVersion}); err != nil {
		_ = s.Reset()
		return err
	}
	b, err := wire.ReadFrame(s)
	if err != nil {
		_ = s.Reset()
		return err
	}
	if len(b) == 0 {
		return handshake.ErrNoOneTimePrekeys
	}
	if len(b) > maxClaimFrame {
		return handshake.ErrTooLarge
	}
	bundle, err := handshake.ParseBundle(b)
	if err != nil {
		return err
	}
	if !bundle.Identity.Equal(card.Identity) || len(bundle.OneTimePrekeys) != 1 || len(bundle.KEMOneTimePrekeys) != 1 {
		return fmt.Errorf("%w: claimed prekeys of another identity or not one pair", handshake.ErrMalformed)
	}
	m.pk.mu.Lock()
	if m.pk.claims == nil {
		m.pk.claims = map[int64]*handshake.Bundle{}
	}
	m.pk.claims[cid] = bundle
	m.pk.mu.Unlock()
	return nil
}

// sessionBundle returns the bundle to start a session with contact cid
// whose card is card: a claimed one (used once, then forgotten) or the
// card's.
func (m *Messenger) sessionBundle(cid int64, card *identity.Card) *handshake.Bundle {
	m.pk.mu.Lock()
	defer m.pk.mu.Unlock()
	b := m.pk.claims[cid]
	delete(m.pk.claims, cid)
	if b != nil && b.Identity.Equal(card.Identity) {
		return b
	}
	return card.Bundle
}

// hasClaim reports whether one-time prekeys of contact cid are waiting
// for the next session.
func (m *Messenger) hasClaim(cid int64) bool {
	m.pk.mu.Lock()
	defer m.pk.mu.Unlock()
	return m.pk.claims[cid] != nil
}
