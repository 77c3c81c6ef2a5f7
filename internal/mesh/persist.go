package mesh

import (
	"context"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Carried items live in the node's encrypted store (Config.Store), so that
// a carrier that restarts still carries them: every change is journalled in
// memory and written in one transaction at the end of each sync, hand-off
// and sweep (flush). Our own outgoing mail is not written: the messenger
// keeps it in its outbox until the ack and offers it again after a restart.

// load fills the item store from the durable store, within the bounds of
// this run; what no longer fits, or has expired, is deleted there.
func (m *Mesh) load(ctx context.Context) error {
	var rows []store.CarriedItem
	if err := m.cfg.Store.View(ctx, func(tx *store.Tx) (err error) { rows, err = tx.CarriedItems(); return err }); err != nil {
		return err
	}
	now := m.now()
	var gone [][]byte
	for _, r := range rows {
		it, ok := fromRow(r, now.Add(m.cfg.TTL))
		if !ok || !now.Before(it.expires) || !m.st.put(it) {
			gone = append(gone, r.ID)
		}
	}
	m.st.takeJournal() // what was just read is in the store already
	if len(gone) == 0 {
		return nil
	}
	return m.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		for _, id := range gone {
			if err := tx.DeleteCarried(id); err != nil {
				return err
			}
		}
		return nil
	})
}

// fromRow rebuilds an item; ok is false for a row that is not a valid one.
func fromRow(r store.CarriedItem, maxExpiry time.Time) (*item, bool) {
	if len(r.ID) != mailbox.HashSize || len(r.Mailbox) != mailbox.IDSize || r.Hops < 0 || r.Hops > MaxHops ||
		len(r.Hosts) > MaxHosts || r.Arrived <= 0 {
		return nil, false
	}
	it := &item{hops: uint32(r.Hops), expires: r.Expires, from: r.From, hosts: r.Hosts, arrived: uint64(r.Arrived)}
	copy(it.id[:], r.ID)
	copy(it.mailbox[:], r.Mailbox)
	if it.expires.After(maxExpiry) {
		it.expires = maxExpiry
	}
	if r.Envelope != nil {
		if len(r.Envelope) == 0 || mailbox.HashEnvelope(r.Envelope) != it.id {
			return nil, false
		}
		it.env = r.Envelope
		return it, true
	}
	if len(r.ReceiptHash) != mailbox.HashSize {
		return nil, false
	}
	copy(it.rcptHash[:], r.ReceiptHash)
	if receiptID(it.rcptHash) != it.id || !verifyReceipt(it.mailbox, it.rcptHash, r.ReceiptKey, r.ReceiptSig) {
		return nil, false
	}
	it.rcptPub, it.rcptSig, it.hosts = r.ReceiptKey, r.ReceiptSig, nil
	return it, true
}

func toRow(it *item) store.CarriedItem {
	r := store.CarriedItem{ID: it.id[:], Mailbox: it.mailbox[:], Hops: int(it.hops), Expires: it.expires,
		Arrived: int64(it.arrived), From: it.from, Hosts: it.hosts, Envelope: it.env}
	if it.env == nil {
		r.ReceiptHash, r.ReceiptKey, r.ReceiptSig = it.rcptHash[:], it.rcptPub, it.rcptSig
	}
	return r
}

// flush writes the journalled changes to the durable store. Flushes run
// one at a time, so that a put and a later delete of one id are written in
// that order. A failed write is logged and given back to the journal.
func (m *Mesh) flush(ctx context.Context) {
	if m.cfg.Store == nil {
		return
	}
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	j := m.st.takeJournal()
	if len(j) == 0 {
		return
	}
	err := m.cfg.Store.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		for id, it := range j {
			var err error
			if it == nil {
				err = tx.DeleteCarried(id[:])
			} else {
				err = tx.PutCarried(toRow(it))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.log.Warn("meshPersistFailed", "items", len(j), "err", err)
		m.st.restoreJournal(j)
	}
}
