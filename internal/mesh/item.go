package mesh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// MaxHostLen bounds one mailbox host peer id in an item.
const MaxHostLen = 128

// writeItem sends one item, to travel on with hops left.
func (m *Mesh) writeItem(w io.Writer, it *item, hops uint32) error {
	msg := &wirepb.MeshItem{Version: Version, MailboxId: it.mailbox[:], Hops: hops, ExpiresUnix: it.expires.Unix(), Hosts: it.hosts}
	if it.env != nil {
		msg.EnvelopeSize = uint32(len(it.env))
	} else {
		msg.Receipt = &wirepb.MeshReceipt{EnvelopeHash: it.rcptHash[:], PublicKey: it.rcptPub, Signature: it.rcptSig}
	}
	if err := writeMsg(w, msg); err != nil {
		return err
	}
	m.itemsSent.Add(1)
	if it.env != nil {
		return wire.WriteFrame(w, it.env)
	}
	return nil
}

// receiver takes the items of one sync: stores what it may carry, applies
// receipts, and collects what is for our own mailboxes.
type receiver struct {
	m      *Mesh
	from   string // the neighbour the items come from
	now    time.Time
	own    map[mailbox.ID][]*item
	stored int
	// ownBytes counts the envelope bytes for our mailboxes taken in this
	// sync (bounded by Config.MaxOwnBytes); delivered how many of them
	// finish handed to their owner.
	ownBytes  int
	delivered int
}

func newReceiver(m *Mesh, from string) *receiver {
	return &receiver{m: m, from: from, now: m.now(), own: map[mailbox.ID][]*item{}}
}

// readItem reads and takes one item; io.EOF at a clean end.
func (rx *receiver) readItem(r io.Reader) error {
	var msg wirepb.MeshItem
	if err := readMsg(r, &msg); err != nil {
		return err
	}
	it, err := rx.parse(&msg)
	if err != nil {
		return err
	}
	if msg.EnvelopeSize > 0 {
		env, err := wire.ReadFrame(r)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		if len(env) != int(msg.EnvelopeSize) {
			return fmt.Errorf("%w: envelope size", ErrMalformed)
		}
		it.env = env
		it.id = mailbox.HashEnvelope(env)
	}
	rx.m.itemsRecv.Add(1)
	// Sent to us again: a dedupe failure (the flooding test counts them);
	// not an envelope whose receipt we learnt while it was on its way.
	if rx.m.st.isKnown(it.id) && (it.env == nil || !rx.m.st.isKnown(receiptID(it.id))) {
		rx.m.itemsDup.Add(1)
	}
	rx.take(it)
	return nil
}

// parse validates an item's header.
func (rx *receiver) parse(msg *wirepb.MeshItem) (*item, error) {
	if err := checkVersion(msg.Version); err != nil {
		return nil, err
	}
	if len(msg.MailboxId) != mailbox.IDSize || msg.Hops > MaxHops || len(msg.Hosts) > MaxHosts ||
		(msg.EnvelopeSize > 0) == (msg.Receipt != nil) || msg.EnvelopeSize > wire.MaxEnvelopeSize {
		return nil, ErrMalformed
	}
	for _, h := range msg.Hosts {
		if h == "" || len(h) > MaxHostLen {
			return nil, ErrMalformed
		}
	}
	it := &item{hops: msg.Hops, expires: time.Unix(msg.ExpiresUnix, 0), hosts: msg.Hosts}
	copy(it.mailbox[:], msg.MailboxId)
	// Whatever it claims, an item is kept no longer than our own TTL: a
	// far expiry buys nothing (eviction ignores it too).
	if limit := rx.now.Add(rx.m.cfg.TTL); it.expires.After(limit) {
		it.expires = limit
	}
	if rc := msg.Receipt; rc != nil {
		if len(rc.EnvelopeHash) != mailbox.HashSize {
			return nil, ErrMalformed
		}
		copy(it.rcptHash[:], rc.EnvelopeHash)
		if !verifyReceipt(it.mailbox, it.rcptHash, rc.PublicKey, rc.Signature) {
			return nil, fmt.Errorf("%w: bad receipt signature", ErrMalformed)
		}
		it.rcptPub, it.rcptSig = rc.PublicKey, rc.Signature
		it.id = receiptID(it.rcptHash)
		it.hosts = nil
	}
	return it, nil
}

// take files one valid item.
func (rx *receiver) take(it *item) {
	m := rx.m
	if !rx.now.Before(it.expires) {
		return
	}
	if it.env == nil {
		// A receipt: the envelope is delivered; drop it if we hold it for
		// that same mailbox, and keep the receipt to pass it on.
		if held := m.st.get(it.rcptHash); held != nil && held.mailbox == it.mailbox {
			m.st.drop(it.rcptHash)
		}
		m.st.remember(it.rcptHash, it.expires)
		if m.st.put(it) {
			rx.stored++
		}
		return
	}
	if _, mine := m.ownerOf(it.mailbox); mine {
		// A byte budget per sync for what is addressed to us (held in
		// memory until delivered): the rest is not taken, and comes at
		// the next sync.
		if rx.ownBytes+it.size() > m.cfg.MaxOwnBytes {
			return
		}
		// Claim first, then check: a delivery finishing in between has
		// made the id known by the time it releases its claim.
		if m.claim(it.id) {
			if m.st.isKnown(it.id) {
				m.unclaim(it.id)
			} else {
				rx.own[it.mailbox] = append(rx.own[it.mailbox], it)
				rx.ownBytes += it.size()
			}
		}
		return
	}
	if m.st.isKnown(receiptID(it.id)) {
		m.st.remember(it.id, it.expires) // delivered already
		return
	}
	it.own, it.from = false, rx.from
	if m.st.put(it) {
		rx.stored++
	}
}

// finish hands our own envelopes to their owners, writes what was taken
// to the durable store, and tells the loop about new items to pass on.
func (rx *receiver) finish(ctx context.Context) {
	for id, items := range rx.own {
		if o, ok := rx.m.ownerOf(id); ok {
			rx.delivered += rx.m.deliverOwn(ctx, o, items)
		}
	}
	rx.own = nil
	rx.m.flush(ctx)
	if rx.stored > 0 {
		rx.m.poke()
	}
}

// claim reserves an envelope for our own mailbox for one delivery: two
// neighbours bringing it at once must not deliver it twice.
func (m *Mesh) claim(id mailbox.Hash) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.delivering[id] {
		return false
	}
	m.delivering[id] = true
	return true
}

func (m *Mesh) unclaim(id mailbox.Hash) {
	m.mu.Lock()
	delete(m.delivering, id)
	m.mu.Unlock()
}

// deliverOwn hands envelopes for one of our mailboxes to its owner, and
// answers those it is done with by a receipt (dropping any copy we held).
// It returns how many the owner is done with.
func (m *Mesh) deliverOwn(ctx context.Context, o owner, items []*item) int {
	envs := make([][]byte, len(items))
	for i, it := range items {
		envs[i] = it.env
	}
	done := o.deliver(ctx, envs)
	n := 0
	for i, it := range items {
		if i >= len(done) || !done[i] {
			m.unclaim(it.id)
			continue
		}
		n++
		m.st.drop(it.id)
		m.st.remember(it.id, it.expires)
		sig := ed25519.Sign(o.key, receiptMessage(o.id, it.id))
		m.st.put(&item{
			id: receiptID(it.id), mailbox: o.id, hops: uint32(m.cfg.Hops), expires: it.expires,
			rcptHash: it.id, rcptPub: o.key.Public().(ed25519.PublicKey), rcptSig: sig,
		})
		m.unclaim(it.id)
	}
	if n > 0 {
		m.delivered.Add(int64(n))
		m.log.Debug("meshDelivered", "mailbox", o.id.Short(), "envelopes", n)
		m.poke()
	}
	return n
}

// handToHosts deposits the envelopes we carry for others with peer, if it
// is one of their recipients' mailbox hosts; what it accepts is dropped.
func (m *Mesh) handToHosts(ctx context.Context, peer string) {
	if m.cfg.Depositor == nil {
		return
	}
	items := m.st.selectItems(func(it *item) bool {
		if it.env == nil || it.own {
			return false
		}
		for _, h := range it.hosts {
			if h == peer {
				return true
			}
		}
		return false
	})
	byMailbox := map[mailbox.ID][]*item{}
	for _, it := range items {
		byMailbox[it.mailbox] = append(byMailbox[it.mailbox], it)
	}
	for id, its := range byMailbox {
		envs := make([][]byte, len(its))
		for i, it := range its {
			envs[i] = it.env
		}
		dctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
		n, err := mailbox.DepositBatch(dctx, m.cfg.Depositor, peer, id, envs)
		cancel()
		for _, it := range its[:n] {
			m.st.drop(it.id)
		}
		m.handed.Add(int64(n))
		if err != nil {
			m.log.Debug("meshDepositFailed", "host", short(peer), "err", err)
		}
	}
	m.flush(ctx)
}
