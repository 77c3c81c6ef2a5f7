package messenger

import (
	"bytes"
	"errors"
	"github.com/samizdat-im/samizdat/internal/identity"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// batch memoises, within one store transaction that handles many
// messages, the contacts looked up and the session records read, and
// writes each changed record once at the end. It dies with the
// transaction: nothing in it outlives a rollback.
type batch struct {
	byPeer  map[string]*store.Contact
	byRef   map[string]*store.Contact
	records map[int64]*wirepb.SessionRecord
	dirty   map[int64]bool
	events  []Event
	// delivered holds the ids of our messages acked in this transaction,
	// seenAcks the ack envelopes already applied.
	delivered map[string]bool
	seenAcks  map[string]bool
	// acks to send for messages stored in this transaction, by contact
	// and device (fanout.go).
	acks     map[ackKey]*pendingAck
	ackOrder []ackKey
	// dev holds the session records of contacts' devices other than
	// their primary one, and peer the device the envelope being processed
	// came from (fanout.go).
	dev  devRecords
	peer string
	// sealedFrom is the sender hint of the sealed envelope being
	// processed (nil when not from a sealed box); contacts and byHint
	// memoise the contacts to try (reset when a contact is added).
	sealedFrom []byte
	contacts   []store.Contact
	byHint     map[string][]int
	// after runs once the transaction committed (joining group topics).
	after []func()
}

// sealedCandidates returns the contacts a sealed envelope's sender hint
// names (almost always one; none for a hint no contact has). The table is
// built once per batch: one read of the contacts, then O(1) per envelope.
func (b *batch) sealedCandidates(tx *store.Tx, hint []byte) ([]*store.Contact, error) {
	if b.contacts == nil {
		cs, err := tx.Contacts()
		if err != nil {
			return nil, err
		}
		rs, err := tx.Requests() // a request's later messages come sealed too
		if err != nil {
			return nil, err
		}
		cs = append(cs, rs...)
		b.contacts, b.byHint = cs, make(map[string][]int, len(cs))
		for i, c := range cs {
			if key, err := identity.ParseAccountID(c.AccountID); err == nil {
				h := string(sealedHint(key))
				b.byHint[h] = append(b.byHint[h], i)
			}
		}
	}
	if len(hint) == 0 {
		return nil, nil
	}
	var out []*store.Contact
	for _, i := range b.byHint[string(hint)] {
		out = append(out, &b.contacts[i])
	}
	return out, nil
}

// forget drops everything of contact cid (deleted in this transaction).
func (b *batch) forget(cid int64) {
	b.contactAdded()
	for p, c := range b.byPeer {
		if c.ID == cid {
			delete(b.byPeer, p)
		}
	}
	for r, c := range b.byRef {
		if c.ID == cid {
			delete(b.byRef, r)
		}
	}
	delete(b.records, cid)
	delete(b.dirty, cid)
	b.dev.forget(cid)
	for k := range b.acks {
		if k.cid == cid {
			delete(b.acks, k)
		}
	}
	b.ackOrder = slices.DeleteFunc(b.ackOrder, func(k ackKey) bool { return k.cid == cid })
}

// contactAdded forgets memoised contact lists.
func (b *batch) contactAdded() { b.contacts, b.byHint = nil, nil }

// pendingAck collects the messages of one contact to acknowledge at once.
type pendingAck struct {
	contact *store.Contact
	ids     [][]byte
	hashes  [][]byte
	resps   []*wirepb.Response
	mailbox bool // fetched from a mailbox: queue the ack for delivery
}

// pendingDuplicate reports whether this very envelope (same id and
// contents) is already waiting for its ack in this transaction.
func (b *batch) pendingDuplicate(cid int64, env *wirepb.Envelope) bool {
	h := envelopeHash(env)
	return b.pendingIn(ackKey{cid: cid}, env, h) || (b.peer != "" && b.pendingIn(ackKey{cid, b.peer}, env, h))
}

func (b *batch) pendingIn(k ackKey, env *wirepb.Envelope, h []byte) bool {
	pa, ok := b.acks[k]
	if !ok {
		return false
	}
	for i, id := range pa.ids {
		if bytes.Equal(id, env.MessageId) && bytes.Equal(pa.hashes[i], h) {
			return true
		}
	}
	return false
}

// queueAck notes that env's message, from c, is stored and must be acked
// (see Messenger.flushAcks); resp gets the ack then.
func (b *batch) queueAck(c *store.Contact, env *wirepb.Envelope, resp *wirepb.Response, fromMailbox bool) {
	k := b.ackKeyOf(c)
	pa, ok := b.acks[k]
	if !ok {
		pa = &pendingAck{contact: c}
		b.acks[k] = pa
		b.ackOrder = append(b.ackOrder, k)
	}
	pa.ids = append(pa.ids, env.MessageId)
	pa.hashes = append(pa.hashes, envelopeHash(env))
	pa.resps = append(pa.resps, resp)
	pa.mailbox = pa.mailbox || fromMailbox
	resp.Status = wirepb.Response_STATUS_OK
}

func newBatch() *batch {
	return &batch{
		byPeer: map[string]*store.Contact{}, byRef: map[string]*store.Contact{},
		records: map[int64]*wirepb.SessionRecord{}, dirty: map[int64]bool{},
		delivered: map[string]bool{}, seenAcks: map[string]bool{}, acks: map[ackKey]*pendingAck{},
	}
}

// contactByPeer is tx.ContactByPeer, memoised.
func (b *batch) contactByPeer(tx *store.Tx, peer string) (*store.Contact, error) {
	if c, ok := b.byPeer[peer]; ok {
		return c, nil
	}
	c, err := tx.ContactByPeer(peer)
	if err == nil {
		b.byPeer[peer] = c
	}
	return c, err
}

// resolve is resolve, memoised.
func (b *batch) resolve(tx *store.Tx, ref string) (*store.Contact, error) {
	if c, ok := b.byRef[ref]; ok {
		return c, nil
	}
	c, err := resolve(tx, ref)
	if err == nil {
		b.byRef[ref] = c
	}
	return c, err
}

// record returns a copy of a contact's session record, to change and
// hand back with setRecord only if all goes well.
func (b *batch) record(tx *store.Tx, cid int64) (*wirepb.SessionRecord, error) {
	rec, ok := b.records[cid]
	if !ok {
		var err error
		if rec, err = loadRecord(tx, cid); err != nil {
			return nil, err
		}
		b.records[cid] = rec
	}
	return proto.Clone(rec).(*wirepb.SessionRecord), nil
}

// setRecord records a contact's changed session record.
func (b *batch) setRecord(cid int64, rec *wirepb.SessionRecord) {
	b.records[cid] = rec
	b.dirty[cid] = true
}

// flush writes the changed records; call it last in the transaction.
func (b *batch) flush(tx *store.Tx) error {
	var errs []error
	for cid := range b.dirty {
		errs = append(errs, saveRecord(tx, cid, b.records[cid]))
	}
	clear(b.dirty)
	errs = append(errs, b.dev.flush(tx))
	return errors.Join(errs...)
}
