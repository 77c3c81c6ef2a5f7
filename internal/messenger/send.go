package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Outgoing message states (DESIGN §7).
const (
	StateQueued    = "queued"
	StateSent      = "sent"
	StateDelivered = "delivered"
	StateRead      = "read"
	StateFailed    = "failed"
	StateReceived  = "received"
)

// stateRank orders outgoing states so that a late or repeated report never
// moves a message backwards.
var stateRank = map[string]int{StateQueued: 0, StateFailed: 1, StateSent: 2, StateDelivered: 3, StateRead: 4}

// Send encrypts text to a contact (by name or account id) and queues it
// durably; it returns once the message is on disk. Delivery follows.
// Concurrent sends are committed together (group commit).
func (m *Messenger) Send(ctx context.Context, ref, text string) (store.Message, error) {
	if err := m.revokedErr(); err != nil {
		return store.Message{}, err
	}
	if strings.TrimSpace(text) == "" {
		return store.Message{}, ErrEmptyMessage
	}
	if len(text) > wire.MaxTextSize {
		return store.Message{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLong, len(text), wire.MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return store.Message{}, errors.New("message is not valid UTF-8 text")
	}
	m.awaitClaim(ctx, ref) // a new contact's one-time prekeys (prekeys.go)
	req := &sendReq{ref: ref, text: text, done: make(chan struct{})}
	select {
	case m.sendq <- req:
	case <-m.closed:
		return store.Message{}, ErrClosed
	case <-ctx.Done():
		return store.Message{}, ctx.Err()
	}
	<-req.done // once taken, a request is always answered, quickly
	return req.msg, req.err
}

// sendReq is one Send waiting for the committer.
type sendReq struct {
	ref, text  string
	attachment []byte // a media manifest (attachments.go), or nil
	msg        store.Message
	err        error
	done       chan struct{}
}

// commitLoop takes Send requests and commits those that are waiting
// together in one transaction, until Close.
func (m *Messenger) commitLoop() {
	for {
		var first *sendReq
		select {
		case first = <-m.sendq:
		case <-m.closed:
			return
		}
		batch := []*sendReq{first}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-m.sendq:
				batch = append(batch, r)
			default:
				break more
			}
		}
		m.commitSends(batch)
	}
}

func (m *Messenger) commitSends(batch []*sendReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	ctx := context.Background()
	card, cardErr := m.card(ctx)
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		b := newBatch()
		for _, r := range batch {
			r.err = nil
			if err := m.queueOne(tx, b, r, card, cardErr); err != nil {
				if isPermanent(err) {
					r.err = errors.Unwrap(err)
					continue
				}
				return err
			}
		}
		return b.flush(tx)
	})
	for _, r := range batch {
		if err != nil && r.err == nil {
			r.err = err
		}
		if r.err == nil {
			m.unindexed.Store(true)
			m.emit(Event{Type: EventMessage, ContactID: r.msg.ContactID, MessageID: r.msg.ID, State: r.msg.State})
		}
	}
	m.wake()
}

// queueOne encrypts and stores one outgoing message inside the send
// transaction. Errors about the request itself (unknown contact, no keys)
// are permanent and come before any write.
func (m *Messenger) queueOne(tx *store.Tx, b *batch, r *sendReq, card []byte, cardErr error) error {
	c, err := b.resolve(tx, r.ref)
	if err != nil {
		if errors.Is(err, ErrUnknownContact) {
			return permanent(err)
		}
		return err
	}
	id := make([]byte, wire.MessageIDSize)
	if _, err := io.ReadFull(m.rand, id); err != nil {
		return err
	}
	now, err := m.sent.next(tx, m.acct, m.now())
	if err != nil {
		return err
	}
	rec, err := b.record(tx, c.ID)
	if err != nil {
		return err
	}
	p, err := m.textPayload(tx, rec, c.ID, id, r.text, now, card, cardErr)
	if err != nil {
		return err
	}
	p.GetText().Attachment = r.attachment
	s, err := m.encrypt(rec, c, id, p)
	if err != nil {
		return permanent(err)
	}
	r.msg = store.Message{ID: hex.EncodeToString(id), ContactID: c.ID, Outgoing: true, Body: r.text, SentAt: now, At: now, State: StateQueued}
	b.setRecord(c.ID, rec)
	if _, err := tx.InsertMessage(&r.msg); err != nil {
		return err
	}
	if err := tx.Enqueue(store.OutboxItem{MessageID: r.msg.ID, ContactID: c.ID, Payload: s.bytes, NextAttempt: now}); err != nil {
		return err
	}
	return m.fanOut(tx, c, r.msg.ID, p, now) // the contact's other devices, our own (fanout.go)
}

// textPayload is the payload of a text message, with our card when the
// session is new (so the peer can add us and answer) or when the contact
// has not had our current card yet.
func (m *Messenger) textPayload(tx *store.Tx, rec *wirepb.SessionRecord, cid int64, id []byte, body string, sentAt time.Time, card []byte, cardErr error) (*wirepb.Payload, error) {
	p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Text{Text: &wirepb.Text{
		MessageId: id, Body: body, SentAtUnixMs: sentAt.UnixMilli(),
	}}}
	if len(rec.Sessions) == 0 || len(rec.Sessions[0].Initiation) > 0 {
		if cardErr != nil {
			return nil, cardErr
		}
		p.SenderCard = card
		if err := attachInviteProof(tx, cid, p); err != nil {
			return nil, err
		}
	}
	return p, m.attachCard(tx, cid, p)
}

// ErrNotFailed is returned by Retry for a message that has not failed.
var ErrNotFailed = errors.New("only a failed message can be retried")

// Retry sends a failed message again: it is encrypted afresh on the
// current session (under the same message id, so that a recipient who had
// it after all shows it once) and queued.
func (m *Messenger) Retry(ctx context.Context, ref, msgID string) (store.Message, error) {
	var out store.Message
	now := m.now()
	card, cardErr := m.card(ctx) // not in the transaction: it may write
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		b := newBatch()
		c, err := b.resolve(tx, ref)
		if err != nil {
			return err
		}
		msg, err := tx.Message(c.ID, true, msgID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: no message %s to %s", store.ErrNotFound, msgID, c.Name)
		} else if err != nil {
			return err
		}
		if msg.State != StateFailed {
			return fmt.Errorf("%w (it is %s)", ErrNotFailed, msg.State)
		}
		id, err := hex.DecodeString(msgID)
		if err != nil || len(id) != wire.MessageIDSize {
			return fmt.Errorf("%w: bad message id", ErrNotFailed)
		}
		rec, err := b.record(tx, c.ID)
		if err != nil {
			return err
		}
		p, err := m.textPayload(tx, rec, c.ID, id, msg.Body, msg.SentAt, card, cardErr)
		if err != nil {
			return err
		}
		sealed, err := m.encrypt(rec, c, id, p)
		if err != nil {
			return err
		}
		b.setRecord(c.ID, rec)
		if err := tx.SetMessageState(c.ID, true, msgID, StateQueued); err != nil {
			return err
		}
		if err := tx.DeleteOutbox(c.ID, msgID); err != nil {
			return err
		}
		if err := tx.Enqueue(store.OutboxItem{MessageID: msgID, ContactID: c.ID, Payload: sealed.bytes, NextAttempt: now}); err != nil {
			return err
		}
		msg.State, out = StateQueued, *msg
		return b.flush(tx)
	})
	if err != nil {
		return store.Message{}, err
	}
	m.emit(Event{Type: EventState, ContactID: out.ContactID, MessageID: out.ID, State: StateQueued})
	m.wake()
	return out, nil
}

// Messages returns a conversation's messages after the given local
// sequence number (0: from the start), in display order (store.Message.Ord).
func (m *Messenger) Messages(ctx context.Context, ref string, afterSeq int64, limit int) (ContactInfo, []store.Message, error) {
	var ci ContactInfo
	var out []store.Message
	err := m.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		ci = m.contactInfo(c)
		out, err = tx.Messages(c.ID, afterSeq, limit)
		return err
	})
	if out == nil {
		out = []store.Message{}
	}
	return ci, out, err
}

// run is the delivery loop: it sends what is due, on a kick (new message,
// peer connected) or every pollInterval.
func (m *Messenger) run(ctx context.Context) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	idle := true
	for {
		m.flush(ctx)
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-t.C:
			if m.unindexed.Load() {
				m.indexPending(ctx)
				idle = false
			} else if !idle {
				// The first quiet second after some writes: move the WAL
				// into the database file now, off the writer, rather than
				// in the middle of the next burst (see store.Checkpoint).
				if err := m.st.Checkpoint(ctx); err != nil && ctx.Err() == nil {
					m.log.Debug("checkpointFailed", "err", err)
				}
				idle = true
			}
		}
	}
}

func (m *Messenger) flush(ctx context.Context) {
	if m.revokedFlush(ctx) {
		return // this device was revoked: it sends nothing (revoked.go)
	}
	var due []int64
	now := m.now()
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { due, err = tx.DueContacts(now); return err }); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("outboxReadFailed", "err", err)
		}
		return
	}
	for _, cid := range due {
		m.flightMu.Lock()
		_, busy := m.inflight[cid]
		f := &flight{}
		if !busy {
			m.inflight[cid] = f
		}
		m.flightMu.Unlock()
		if busy {
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			ok := m.deliver(ctx, cid, f)
			m.flightMu.Lock()
			delete(m.inflight, cid)
			m.flightMu.Unlock()
			if ok {
				m.wake() // more may have been queued meanwhile
			}
		}()
	}
	m.flushDevices(ctx) // copies for other devices (fanout.go)
}

// indexPending adds messages stored since the last tick to the search
// index, in one transaction for all of them.
func (m *Messenger) indexPending(ctx context.Context) {
	if !m.unindexed.Swap(false) {
		return
	}
	err := m.st.Update(ctx, func(tx *store.Tx) error { _, err := tx.IndexPending(0); return err })
	if err != nil && ctx.Err() == nil {
		m.unindexed.Store(true)
		m.log.Warn("indexFailed", "err", err)
	}
}

// backoff returns the delay before attempt number n (1-based), with jitter.
func (m *Messenger) backoff(n int) time.Duration {
	d := m.cfg.RetryMin
	for i := 1; i < n && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, m.cfg.RetryMax)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// deliver sends one contact's due envelopes in order on one stream and
// applies the responses. It reports whether all went through (so that
// more queued meanwhile can go at once).
func (m *Messenger) deliver(ctx context.Context, cid int64, f *flight) bool {
	var c *store.Contact
	var items []store.OutboxItem
	now := m.now()
	err := m.st.View(ctx, func(tx *store.Tx) (err error) {
		if c, err = tx.Contact(cid); err != nil {
			return err
		}
		// The whole queue, oldest first, once the oldest is due: a
		// conversation is delivered in order, whatever the retry times of
		// single messages. Not loaded while the oldest waits out its
		// backoff (store.OutboxHeadDue).
		due, ok, err := tx.OutboxHeadDue(cid)
		if err != nil || !ok {
			return err
		}
		if due.After(now) {
			// Only something written during the backoff makes us look:
			// it goes to the mailbox hosts now (queuedDuringBackoff).
			if fresh, err := tx.DueOutboxFor(cid, now, 1); err != nil || len(fresh) == 0 {
				return err
			}
		}
		items, err = tx.Outbox(cid)
		return err
	})
	if err != nil || len(items) == 0 {
		return false
	}
	if items[0].NextAttempt.After(now) {
		m.queuedDuringBackoff(ctx, c, items, now)
		return false
	}
	queue := items
	if len(items) > outboxBatch {
		items = items[:outboxBatch]
	}
	// Messages retried for too long (on any path: unreachable, busy, no
	// readable ack) fail visibly instead of being retried for ever.
	if items = m.expire(ctx, c, items); len(items) == 0 {
		return true
	}
	if m.tr == nil || c.PeerID == "" {
		m.reschedule(ctx, c, items, ErrNotReachable)
		return false
	}
	s, err := m.openStream(ctx, c.PeerID, f)
	deposited, moved := false, false
	if err != nil {
		// Not reachable: look for a newer card of the contact in the
		// DHT (it may have moved, to new addresses and new mailbox
		// hosts). That lookup can take a stream timeout when the DHT
		// does not answer; past a short grace the envelopes go to the
		// hosts of the card we hold meanwhile (the whole queue, not
		// just this batch: the head stays queued until acked), so a
		// sender about to go offline has left them somewhere.
		found := make(chan bool, 1)
		go func() { found <- m.lookupCard(ctx, c) }()
		select {
		case moved = <-found:
		case <-time.After(cardLookupGrace):
			m.depositToMailboxes(ctx, c, queue)
			deposited = true
			moved = <-found
		}
	}
	if err != nil && moved {
		// The contact moved and published its new card: try there.
		var nc *store.Contact
		if m.st.View(ctx, func(tx *store.Tx) (err error) { nc, err = tx.Contact(cid); return err }) == nil {
			c = nc
			m.tr.AddAddrs(c.PeerID, c.Addrs)
			s, err = m.openStream(ctx, c.PeerID, f)
			deposited = false // its hosts may have changed too
		}
	}
	if err != nil {
		if !deposited {
			m.depositToMailboxes(ctx, c, queue)
		}
		m.offerToMesh(ctx, c, queue)
		m.reschedule(ctx, c, items, err)
		return false
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(m.cfg.StreamTimeout))
	werr := make(chan error, 1)
	go func() {
		for _, it := range items {
			if err := wire.WriteFrame(s, it.Payload); err != nil {
				werr <- err
				return
			}
		}
		werr <- s.CloseWrite()
	}()
	// Each response names the envelope it answers by the envelope's id:
	// a message's id, but for an ack or a group control item not the
	// outbox key (which carries a prefix). Comparing with the outbox key
	// took every answer to a group control for a bad response: the stream
	// was reset, the ack never read, and the item retried for ever.
	want := make([]string, len(items))
	for i, it := range items {
		want[i] = envelopeID(it)
	}
	// Responses that arrive together are applied in one transaction.
	resps := make(chan *wirepb.Response, maxBatch)
	go func() {
		defer close(resps)
		for i := range items {
			b, err := wire.ReadFrame(s)
			if err != nil {
				return
			}
			r, err := wire.ParseResponse(b)
			if err != nil || hex.EncodeToString(r.MessageId) != want[i] {
				m.fault(FaultBadResponse, shortPeer(c.PeerID))
				return
			}
			resps <- r
		}
	}()
	done := 0
	applied := map[string]bool{} // ack envelopes applied by earlier batches of this stream
	for r := range resps {
		batch := []*wirepb.Response{r}
	more:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-resps:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		if err := m.applyResponses(ctx, c, items[done:done+len(batch)], batch, applied); err != nil {
			m.log.Warn("responseFailed", "peer", shortPeer(c.PeerID), "err", err)
			break
		}
		done += len(batch)
	}
	if done < len(items) {
		_ = s.Reset()
		for range resps {
		}
		<-werr
		m.reschedule(ctx, c, items[done:], errors.New("delivery interrupted"))
		return false
	}
	<-werr
	return true
}

// envelopeID is the id of the envelope an outbox item carries, which is
// what the peer's response names.
func envelopeID(it store.OutboxItem) string {
	if env, err := wire.ParseEnvelope(it.Payload); err == nil {
		return hex.EncodeToString(env.MessageId)
	}
	return it.MessageID
}

// applyResponses records, in one transaction, what the peer said about
// each envelope: an encrypted ack makes the message delivered; a missing or
// unreadable ack leaves it sent and queued for a retry (which is acked
// again); a rejection makes it failed; "retry" reschedules it. One ack
// covers a whole batch of the peer's, and its copies may come in several of
// our batches: applied holds those already applied (and committed) on this
// stream, which are not decrypted again (their keys are gone: that read as
// "already received" and rescheduled messages that were delivered).
func (m *Messenger) applyResponses(ctx context.Context, c *store.Contact, items []store.OutboxItem, rs []*wirepb.Response, applied map[string]bool) error {
	var rx *batch
	now := m.now()
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		rx = newBatch()
		for i, r := range rs {
			it := items[i]
			switch r.Status {
			case wirepb.Response_STATUS_OK:
				if isAckItem(it) { // an ack needs no ack
					if err := tx.DeleteOutbox(c.ID, it.MessageID); err != nil {
						return err
					}
					continue
				}
				if rx.delivered[it.MessageID] {
					continue // one ack covers a whole batch: already applied
				}
				if env, err := wire.ParseEnvelope(r.Ack); err == nil && !rx.seenAcks[string(r.Ack)] && !applied[string(r.Ack)] {
					rx.seenAcks[string(r.Ack)] = true
					var scratch wirepb.Response
					rx.byPeer[c.PeerID] = c // the stream went to c's device
					err := m.processEnvelope(tx, rx, c.PeerID, env, &scratch)
					if err == nil {
						m.noteAccepted(c.ID)
						if rx.delivered[it.MessageID] {
							continue
						}
						// An ack that does not cover this message: retry it later.
					} else if !isPermanent(err) {
						return err
					} else {
						m.fault(FaultUnreadableAck, shortPeer(c.PeerID), "err", err)
					}
				}
				if err := m.advance(tx, rx, c.ID, it.MessageID, StateSent); err != nil {
					return err
				}
				n := it.Attempts + 1
				if err := tx.RescheduleOutbox(it.MessageID, c.ID, n, now.Add(m.backoff(n)), "no readable ack"); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			case wirepb.Response_STATUS_REJECTED:
				m.fault(FaultRefused, shortPeer(c.PeerID), "reason", r.Error)
				if r.Error == RefusedRevoked {
					m.refusedAsRevoked(c.PeerID) // revoked.go: proven or not
				}
				if err := tx.DeleteOutbox(c.ID, it.MessageID); err != nil {
					return err
				}
				// A device that keeps refusing our envelopes as unreadable
				// (or from a stranger) lost our session: start afresh. A
				// refused copy of something it had ("replayed") says
				// nothing about the session.
				if r.Error != "replayed message" && m.noteRefusal(c.ID) {
					if err := m.restartSession(tx, rx, c); err != nil {
						return err
					}
				}
				if err := m.advance(tx, rx, c.ID, it.MessageID, StateFailed); err != nil {
					return err
				}
			default:
				n := it.Attempts + 1
				if err := tx.RescheduleOutbox(it.MessageID, c.ID, n, now.Add(m.backoff(n)), "recipient busy: "+r.Error); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
		}
		return rx.flush(tx)
	})
	if err != nil {
		return err
	}
	for a := range rx.seenAcks {
		applied[a] = true
	}
	for _, e := range rx.events {
		m.emit(e)
	}
	return nil
}

// advance moves an outgoing message to state inside tx unless it is
// already further along (failed is only set on queued or sent messages).
func (m *Messenger) advance(tx *store.Tx, rx *batch, cid int64, msgID, state string) error {
	cur, err := tx.Message(cid, true, msgID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if state == StateFailed {
		if cur.State != StateQueued && cur.State != StateSent {
			return nil
		}
	} else if stateRank[state] <= stateRank[cur.State] {
		return nil
	}
	if err := tx.SetMessageState(cid, true, msgID, state); err != nil {
		return err
	}
	rx.events = append(rx.events, Event{Type: EventState, ContactID: cid, MessageID: msgID, State: state})
	return nil
}

// flight is one contact's delivery in progress.
type flight struct {
	cancelDial  context.CancelFunc // set while dialling
	reconnected bool               // the peer connected to us meanwhile
}

// openStream dials the contact's device. If the device connects to us
// while we dial (it came back online, perhaps on new addresses), the dial
// is abandoned for a stream on the fresh connection.
func (m *Messenger) openStream(ctx context.Context, peerID string, f *flight) (p2p.Stream, error) {
	dctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	m.flightMu.Lock()
	f.cancelDial = cancel
	m.flightMu.Unlock()
	s, err := m.tr.OpenStream(dctx, peerID, ProtocolMsg)
	cancel()
	m.flightMu.Lock()
	f.cancelDial = nil
	again := f.reconnected
	f.reconnected = false
	m.flightMu.Unlock()
	if err != nil && again && ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
		defer cancel()
		return m.tr.OpenStream(rctx, peerID, ProtocolMsg)
	}
	return s, err
}

func (m *Messenger) fail(ctx context.Context, cid int64, msgID, why string) error {
	failed := false
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.DeleteOutbox(cid, msgID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if cur, err := tx.Message(cid, true, msgID); err == nil && stateRank[cur.State] >= stateRank[StateDelivered] {
			return nil // another device of the contact acked it (fanout.go): not failed
		}
		failed = true
		return tx.SetMessageState(cid, true, msgID, StateFailed)
	})
	if err == nil && failed {
		m.log.Info("messageFailed", "contact", cid, "reason", why)
		m.emit(Event{Type: EventState, ContactID: cid, MessageID: msgID, State: StateFailed})
	}
	return err
}

// expire marks messages retried for longer than GiveUpAfter as failed and
// returns the others.
func (m *Messenger) expire(ctx context.Context, c *store.Contact, items []store.OutboxItem) []store.OutboxItem {
	keep := items[:0:0]
	for _, it := range items {
		if it.Attempts == 0 {
			keep = append(keep, it) // first attempt: cannot be late
			continue
		}
		var msg *store.Message
		_ = m.st.View(ctx, func(tx *store.Tx) (err error) { msg, err = tx.Message(c.ID, true, it.MessageID); return err })
		if msg != nil && m.now().Sub(msg.SentAt) > m.cfg.GiveUpAfter {
			_ = m.fail(ctx, c.ID, it.MessageID, "not delivered in time")
			continue
		}
		keep = append(keep, it)
	}
	return keep
}

func (m *Messenger) reschedule(ctx context.Context, c *store.Contact, items []store.OutboxItem, cause error) {
	if ctx.Err() != nil {
		return
	}
	if items = m.expire(ctx, c, items); len(items) == 0 {
		return
	}
	// One retry time for the whole queue (from its oldest message), so that
	// messages are retried, and shown, in the order they were written.
	now := m.now()
	n := items[0].Attempts + 1
	next := now.Add(m.backoff(n))
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		return tx.RescheduleQueue(c.ID, n, next, cause.Error())
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("rescheduleFailed", "err", err)
	}
	m.log.Debug("deliveryDeferred", "contact", identity.Short(c.AccountID), "messages", len(items), "cause", cause)
}

// peerConnected retries a contact's queued messages at once when its
// device connects: it is probably back online.
func (m *Messenger) peerConnected(ctx context.Context, peerID string) {
	m.ownDeviceConnected(ctx, peerID) // devsync.go
	if m.cfg.Media != nil {
		m.cfg.Media.SourceConnected(peerID) // a stopped file transfer from it
	}
	if m.isMailboxHost(peerID) {
		m.kickFetch()
	}
	m.backOnline() // fetchpace.go
	var c *store.Contact
	err := m.st.View(ctx, func(tx *store.Tx) (err error) { c, err = tx.ContactByPeer(peerID); return err })
	if err != nil {
		return
	}
	m.claimSoon(c.ID) // no session yet: one-time prekeys for the first (prekeys.go)
	now := m.now()
	_ = m.st.Update(ctx, func(tx *store.Tx) error {
		items, err := tx.Outbox(c.ID)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.NextAttempt.After(now) {
				if err := tx.RescheduleOutbox(it.MessageID, c.ID, it.Attempts, now, it.LastError); err != nil {
					return err
				}
			}
		}
		return nil
	})
	m.flightMu.Lock()
	if f := m.inflight[c.ID]; f != nil && f.cancelDial != nil {
		f.reconnected = true
		f.cancelDial()
	}
	m.flightMu.Unlock()
	m.wake()
}

// greetContacts dials every contact once at start, so that contacts with
// mail queued for us learn we are back and deliver it.
func (m *Messenger) greetContacts(ctx context.Context) {
	var cs []store.Contact
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { cs, err = tx.Contacts(); return err }); err != nil {
		return
	}
	for _, c := range cs {
		if c.PeerID == "" || ctx.Err() != nil {
			continue
		}
		m.tr.AddAddrs(c.PeerID, c.Addrs)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = m.tr.Connect(cctx, c.PeerID, c.Addrs)
		cancel()
	}
}

func shortPeer(p string) string {
	if len(p) > 12 {
		return p[len(p)-8:]
	}
	return p
}

// queuedDuringBackoff handles messages written while the contact's queue
// waits for its next attempt (the device was unreachable): they would
// otherwise wait up to RetryMax before reaching a mailbox host. They go to
// the contact's hosts and the mesh now, as the rest of the queue did when
// it failed, and join the queue's retry time, so that the direct path is
// tried again for all of them together and in order.
func (m *Messenger) queuedDuringBackoff(ctx context.Context, c *store.Contact, items []store.OutboxItem, now time.Time) {
	head := items[0]
	var fresh []store.OutboxItem
	for _, it := range items[1:] {
		if !it.NextAttempt.After(now) {
			fresh = append(fresh, it)
		}
	}
	if len(fresh) == 0 || head.Attempts == 0 {
		return
	}
	m.depositToMailboxes(ctx, c, items) // what was deposited already is remembered
	m.offerToMesh(ctx, c, fresh)
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		for _, it := range fresh {
			if err := tx.RescheduleOutbox(it.MessageID, c.ID, max(head.Attempts, it.Attempts), head.NextAttempt, head.LastError); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("rescheduleFailed", "err", err)
	}
}
