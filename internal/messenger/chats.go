package messenger

import (
	"context"
	"encoding/hex"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
	"io"
	"sort"

	"github.com/samizdat-im/samizdat/internal/store"
)

// EventRead tells subscribers that received messages were marked read.
const EventRead = "read"

// Chat is one conversation as a chat list shows it.
type Chat struct {
	Contact ContactInfo
	Last    *store.Message // nil: no message yet
	Unread  int            // received messages not read yet
}

// Chats returns every conversation, the most recent first (contacts
// without messages last, by name).
func (m *Messenger) Chats(ctx context.Context) ([]Chat, error) {
	var out []Chat
	err := m.st.View(ctx, func(tx *store.Tx) error {
		sums, err := tx.Chats()
		if err != nil {
			return err
		}
		cs, err := tx.Contacts()
		if err != nil {
			return err
		}
		byID := make(map[int64]*store.Contact, len(cs))
		for i := range cs {
			byID[cs[i].ID] = &cs[i]
		}
		for _, s := range sums {
			c, ok := byID[s.ContactID]
			if !ok {
				continue
			}
			out = append(out, Chat{Contact: m.contactInfo(c), Last: s.Last, Unread: s.Unread})
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Last, out[j].Last
		switch {
		case a == nil || b == nil:
			if a == nil && b == nil {
				return out[i].Contact.Name < out[j].Contact.Name
			}
			return b == nil
		default:
			return a.Seq > b.Seq
		}
	})
	if out == nil {
		out = []Chat{}
	}
	return out, err
}

// MessagesBefore returns the newest limit messages of a conversation
// older than beforeSeq (<= 0: the newest), oldest first, and whether
// older ones remain.
func (m *Messenger) MessagesBefore(ctx context.Context, ref string, beforeSeq int64, limit int) (ContactInfo, []store.Message, bool, error) {
	var ci ContactInfo
	var out []store.Message
	var more bool
	err := m.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		ci = m.contactInfo(c)
		out, more, err = tx.MessagesBefore(c.ID, beforeSeq, limit)
		return err
	})
	if out == nil {
		out = []store.Message{}
	}
	return ci, out, more, err
}

// MarkRead marks the received messages of a conversation up to upToSeq
// (<= 0: all) as read on this device and returns how many changed. Read
// receipts are not sent to the contact (the wire has none yet).
func (m *Messenger) MarkRead(ctx context.Context, ref string, upToSeq int64) (int, error) {
	var n int
	var cid int64
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		cid = c.ID
		ids, err := tx.MarkReadIDs(c.ID, upToSeq)
		if err != nil {
			return err
		}
		n = len(ids)
		if err := m.syncRead(tx, c, ids); err != nil { // devsync.go: read on our other devices too
			return err
		}
		if m.noReceipts() || n == 0 {
			return nil
		}
		return m.queueReadReceipts(tx, c, ids)
	})
	m.syncWake()
	if err == nil && n > 0 {
		m.emit(Event{Type: EventRead, ContactID: cid})
		if !m.noReceipts() {
			m.wake()
		}
	}
	return n, err
}

// queueReadReceipts tells the contact which of its messages we read: one
// encrypted receipt per wire.MaxReadIDs ids, queued like an ack (no answer
// needed: directly, or through its mailbox hosts).
func (m *Messenger) queueReadReceipts(tx *store.Tx, c *store.Contact, ids []string) error {
	b := newBatch()
	rec, err := b.record(tx, c.ID)
	if err != nil {
		return err
	}
	if len(rec.Sessions) == 0 {
		return nil // no session to say it on (cannot happen for a received message)
	}
	for _, raw := range readBatches(ids) {
		rid := make([]byte, wire.MessageIDSize)
		if _, err := io.ReadFull(m.rand, rid); err != nil {
			return err
		}
		p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Read{Read: &wirepb.Read{MessageIds: raw}}}
		if err := m.attachCard(tx, c.ID, p); err != nil {
			return err
		}
		sealed, err := m.encrypt(rec, c, rid, p)
		if err != nil {
			return err
		}
		if err := tx.Enqueue(store.OutboxItem{MessageID: ackItemPrefix + "r" + hex.EncodeToString(rid), ContactID: c.ID, Payload: sealed.bytes, NextAttempt: m.now()}); err != nil {
			return err
		}
	}
	b.setRecord(c.ID, rec)
	return b.flush(tx)
}

// Search finds stored messages containing every word of query, newest
// first, at most limit (see store.Tx.Search).
func (m *Messenger) Search(ctx context.Context, query string, limit int) ([]store.Message, error) {
	out, err := m.st.Search(ctx, query, limit)
	if out == nil {
		out = []store.Message{}
	}
	return out, err
}

// SetVerified records whether the user compared the contact's safety
// number with them (in person or over a trusted channel).
func (m *Messenger) SetVerified(ctx context.Context, ref string, verified bool) (ContactInfo, error) {
	var out ContactInfo
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		c.Verified = verified
		if err := tx.UpdateContact(c); err != nil {
			return err
		}
		out = m.contactInfo(c)
		return m.syncContact(tx, c, false) // devsync.go
	})
	m.syncWake()
	if err == nil {
		m.emit(Event{Type: EventContact, ContactID: out.ID})
	}
	return out, err
}

// SetReadReceipts turns read receipts on or off from now on (the user's
// setting; Config.NoReadReceipts keeps them off whatever it says).
func (m *Messenger) SetReadReceipts(on bool) { m.receiptsOff.Store(!on) }

func (m *Messenger) noReceipts() bool { return m.cfg.NoReadReceipts || m.receiptsOff.Load() }

// readBatches turns message ids (hex) into batches of raw ids of at most
// wire.MaxReadIDs each, as a read receipt or a read-state change carries
// them; ids that are not well formed are left out.
func readBatches(ids []string) [][][]byte {
	var out [][][]byte
	for len(ids) > 0 {
		k := min(len(ids), wire.MaxReadIDs)
		raw := make([][]byte, 0, k)
		for _, id := range ids[:k] {
			if b, err := hex.DecodeString(id); err == nil && len(b) == wire.MessageIDSize {
				raw = append(raw, b)
			}
		}
		ids = ids[k:]
		if len(raw) > 0 {
			out = append(out, raw)
		}
	}
	return out
}
