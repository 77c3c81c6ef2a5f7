package messenger

import (
	"context"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// A device's own card in the DHT (issue 17). A copy for a device of a
// contact (or of our own account) that cannot be reached is deposited with
// the mailbox hosts of that device's own card, and a session with it is
// started from that card's prekeys. A contact learns that card when the
// device writes to it or pushes its card (cardpush.go: at its first start
// after linking, and whenever the device list changes, with the own cards
// of the account's other devices the pusher holds). Where none of those
// reached us — the device went offline before its push got through — the
// device's own record in the DHT gives it: each device of a linked account
// publishes its own card under a name derived from the account id and its
// peer id (identity.DeviceCardRecordName), sealed like the account's record,
// and the sender looks it up (at most every cardLookupEvery per device).
// The card is accepted only if the account signed it, it names that device
// first, and the account's card we hold lists the device.

// deviceRecordKey is the DHT key of device peer's own card record.
func deviceRecordKey(accountID, peer string) string {
	return p2p.CardNamespace + identity.DeviceCardRecordName(accountID, peer)
}

// publishDeviceCard puts our own card under this device's record, when
// the account has other devices (linked reports it).
func (m *Messenger) publishDeviceCard(ctx context.Context, d cardDirectory, signed []byte, serial uint64) (linked bool, err error) {
	card, err := identity.ParseSignedCard(signed)
	if err != nil || len(card.Devices) < 2 {
		return false, err
	}
	rec, err := identity.SealCardRecord(m.acct, identity.CardRecordVersion(card), signed)
	if err != nil {
		return true, err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return true, d.PutValue(pctx, deviceRecordKey(m.acct, m.selfPeer()), rec)
}

// lookupDeviceCard fetches the own card of device peer of tg's account
// from the DHT and keeps it (noteDeviceCard); nil if none is found.
func (m *Messenger) lookupDeviceCard(ctx context.Context, tg deviceTarget, peer string) *identity.Card {
	d := m.directory()
	if d == nil || tg.contact == nil {
		return nil
	}
	m.lookupMu.Lock()
	if m.lastDevLookup == nil {
		m.lastDevLookup = map[string]time.Time{}
	}
	if t, ok := m.lastDevLookup[peer]; ok && m.now().Sub(t) < cardLookupEvery {
		m.lookupMu.Unlock()
		return nil
	}
	if len(m.lastDevLookup) > 4096 {
		clear(m.lastDevLookup)
	}
	m.lastDevLookup[peer] = m.now()
	m.lookupMu.Unlock()

	acct := tg.contact.AccountID
	lctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	defer cancel()
	rec, err := d.GetValue(lctx, deviceRecordKey(acct, peer))
	if err != nil {
		m.log.Debug("deviceCardLookup", "device", shortPeer(peer), "err", err)
		m.lookupMu.Lock()
		m.lastDevLookup[peer] = m.now().Add(cardLookupRetry - cardLookupEvery) // try again soon
		m.lookupMu.Unlock()
		return nil
	}
	card, signed, err := identity.OpenCardRecord(acct, rec)
	if err != nil || len(card.Devices) == 0 || card.Devices[0].PeerID != peer || !card.Identity.Equal(tg.ident) {
		m.log.Info("deviceCardRecordRejected", "device", shortPeer(peer), "err", err)
		return nil
	}
	var kept *identity.Card
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		// Still a device of the account (not revoked meanwhile)?
		cur, listed, err := m.targetOf(tx, tg, peer)
		if err != nil || !listed {
			return err
		}
		if err := m.noteDeviceCard(tx, cur.cid, acct, card, signed); err != nil {
			return err
		}
		kept = m.deviceCard(tx, cur, peer)
		return nil
	})
	if err != nil {
		return nil
	}
	if kept != nil {
		m.log.Info("deviceCardFromDirectory", "device", shortPeer(peer), "serial", kept.Serial)
	}
	return kept
}

// targetOf is target for the account of tg and device peer.
func (m *Messenger) targetOf(tx *store.Tx, tg deviceTarget, peer string) (deviceTarget, bool, error) {
	it := store.DeviceItem{PeerID: peer, Own: tg.own}
	if !tg.own {
		it.ContactID = tg.cid
	}
	return m.target(tx, it)
}
