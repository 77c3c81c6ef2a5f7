package messenger

import (
	"context"
	"errors"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Our card in the DHT (DESIGN §4, issue 4): published encrypted under a
// name only those who know our account id can derive
// (identity.SealCardRecord), again whenever it changes (new addresses,
// mailbox hosts or mailbox id) and every cardRepublish; a contact that
// cannot reach us looks it up there, so it follows our moves even when no
// message of ours carried the new card.

// cardDirectory is what a transport with a DHT offers (p2p.Node).
type cardDirectory interface {
	PutValue(ctx context.Context, key string, value []byte) error
	GetValue(ctx context.Context, key string) ([]byte, error)
}

const (
	// cardLookupGrace is how long an unreachable contact's envelopes
	// wait for the DHT lookup of its newer card before they go to the
	// mailbox hosts of the card we hold (send.go).
	cardLookupGrace = 5 * time.Second
	cardRepublish   = 12 * time.Hour // DHT records live about 36 h
	cardLookupEvery = 10 * time.Minute
	cardLookupRetry = 15 * time.Second // after a lookup the DHT could not answer
	cardRetryFirst  = 5 * time.Second
	cardRetryMax    = 10 * time.Minute
)

func cardRecordKey(accountID string) string {
	return p2p.CardNamespace + identity.CardRecordName(accountID)
}

// directory returns the transport's DHT, or nil.
func (m *Messenger) directory() cardDirectory {
	d, _ := m.tr.(cardDirectory)
	return d
}

// cardChangedNotify wakes the publisher after our card was re-signed.
func (m *Messenger) cardChangedNotify() {
	select {
	case m.cardChanged <- struct{}{}:
	default:
	}
}

// publishLoop keeps our card record in the DHT.
func (m *Messenger) publishLoop(ctx context.Context, d cardDirectory) {
	retry := cardRetryFirst
	for {
		wait := cardRepublish
		if err := m.publishCard(ctx, d); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, p2p.ErrNoDHT) {
				m.log.Debug("cardPublishFailed", "err", err)
			}
			wait, retry = retry, min(retry*2, cardRetryMax)
		} else {
			retry = cardRetryFirst
		}
		select {
		case <-ctx.Done():
			return
		case <-m.cardChanged:
		case <-time.After(wait):
		}
	}
}

func (m *Messenger) publishCard(ctx context.Context, d cardDirectory) error {
	if err := m.revokedErr(); err != nil {
		return err // a revoked device publishes nothing (revoked.go)
	}
	if _, err := m.card(ctx); err != nil {
		return err
	}
	card, serial := m.currentCard()
	parsed, err := identity.ParseSignedCard(card)
	if err != nil {
		return err
	}
	// The record's version puts the device list above the serial: a
	// device that missed a change of the list never beats one that made
	// it (identity.CardRecordVersion).
	rec, err := identity.SealCardRecord(m.acct, identity.CardRecordVersion(parsed), card)
	if err != nil {
		return err
	}
	// A device of a linked account has a record of its own (devicerecord.go);
	// the account's record then holds whichever device's card is newest,
	// and a put refused as older than another device's is no failure.
	linked, err := m.publishDeviceCard(ctx, d, card, serial)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.PutValue(pctx, cardRecordKey(m.acct), rec); err != nil && !linked {
		return err
	} else if err != nil {
		m.log.Debug("accountCardNotReplaced", "err", err)
	}
	m.log.Debug("cardPublished", "serial", serial)
	return nil
}

// lookupCard fetches a contact's card from the DHT, at most every
// cardLookupEvery per contact, and stores it if it is newer than ours. It
// reports whether the contact's card changed.
func (m *Messenger) lookupCard(ctx context.Context, c *store.Contact) bool {
	d := m.directory()
	if d == nil {
		return false
	}
	m.lookupMu.Lock()
	if m.lastLookup == nil {
		m.lastLookup = map[int64]time.Time{}
	}
	if t, ok := m.lastLookup[c.ID]; ok && m.now().Sub(t) < cardLookupEvery {
		m.lookupMu.Unlock()
		return false
	}
	m.lastLookup[c.ID] = m.now()
	m.lookupMu.Unlock()

	lctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	defer cancel()
	rec, err := d.GetValue(lctx, cardRecordKey(c.AccountID))
	m.log.Debug("cardLookup", "contact", c.ID, "err", err)
	if err != nil {
		if !errors.Is(err, p2p.ErrNotFound) {
			// The DHT did not answer (no peers yet, offline): try again
			// soon rather than in cardLookupEvery.
			m.lookupMu.Lock()
			m.lastLookup[c.ID] = m.now().Add(cardLookupRetry - cardLookupEvery)
			m.lookupMu.Unlock()
		}
		return false
	}
	card, signed, err := identity.OpenCardRecord(c.AccountID, rec)
	if err != nil {
		m.log.Info("cardRecordRejected", "contact", c.ID, "err", err)
		return false
	}
	if old, err := identity.ParseSignedCard(c.Card); err == nil && identity.CardRecordVersion(old) >= identity.CardRecordVersion(card) {
		m.log.Debug("cardLookupNotNewer", "contact", c.ID, "have", old.Serial, "found", card.Serial)
		return false
	}
	changed := false
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		cur, err := tx.Contact(c.ID)
		if err != nil {
			return err
		}
		if m.checkCardDevice(tx, card, "", cur.ID) != nil {
			return nil // names another contact's device: ignore
		}
		before := string(cur.Card)
		if err := m.refreshCard(tx, nil, cur, card, signed); err != nil {
			return err
		}
		changed = string(cur.Card) != before
		return m.noteDeviceCard(tx, cur.ID, cur.AccountID, card, signed) // fanout.go
	})
	if err != nil {
		return false
	}
	if changed {
		m.log.Info("cardFromDirectory", "contact", c.ID, "serial", card.Serial)
	}
	return changed
}
