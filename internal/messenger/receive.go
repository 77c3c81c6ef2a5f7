package messenger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Errors a receiver reports (to its log and, without detail, to the peer).
var (
	// ErrUnknownSender is returned for a message from a device that is no
	// contact and that does not introduce itself with a card.
	ErrUnknownSender = errors.New("message from an unknown sender")
	// ErrBadMessage is returned for an envelope that decrypts to nonsense.
	ErrBadMessage = errors.New("malformed message")
)

// maxFramesPerStream bounds the work one stream can ask for.
const maxFramesPerStream = 10000

// maxBatch bounds how many envelopes one store transaction takes.
const maxBatch = 128

// handleStream serves /samizdat/msg/1: a sequence of envelope frames, each
// answered in order with a response frame. Frames that arrive together are
// processed in one store transaction (group commit). Garbage or oversized
// frames reset the stream; the node carries on.
func (m *Messenger) handleStream(s p2p.Stream) {
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.closed:
			_ = s.Reset()
		case <-ctx.Done():
		}
	}()
	peer := s.RemotePeer()
	frames := make(chan *wirepb.Envelope, maxBatch)
	readErr := make(chan error, 1)
	go func() {
		defer close(frames)
		for n := 0; n < maxFramesPerStream; n++ {
			_ = s.SetDeadline(time.Now().Add(m.cfg.StreamTimeout))
			b, err := wire.ReadFrame(s)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
			env, err := wire.ParseEnvelope(b)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case frames <- env:
			case <-ctx.Done():
				return
			}
		}
		readErr <- errors.New("too many frames on one stream")
	}()
	for {
		env, ok := <-frames
		if !ok {
			break
		}
		batch := []*wirepb.Envelope{env}
	drain:
		for len(batch) < maxBatch {
			select {
			case e, ok := <-frames:
				if !ok {
					break drain
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		resps, err := m.receiveBatch(ctx, peer, batch)
		if err != nil {
			m.fault(FaultRejected, shortPeer(peer), "count", len(batch), "err", err)
		}
		for _, r := range resps {
			if err := wire.WriteFrame(s, wire.Marshal(r)); err != nil {
				_ = s.Reset()
				return
			}
		}
	}
	select {
	case err := <-readErr:
		m.fault(FaultBadFrame, shortPeer(peer), "err", err)
		_ = s.Reset()
	default:
	}
}

// receive processes one envelope from peer; see receiveBatch.
func (m *Messenger) receive(ctx context.Context, peer string, env *wirepb.Envelope) (*wirepb.Response, error) {
	rs, err := m.receiveBatch(ctx, peer, []*wirepb.Envelope{env})
	return rs[0], err
}

// receiveBatch processes envelopes that arrived from peer, in order, in
// one store transaction, and returns the response to send back for each
// (an encrypted ack for a stored text). An envelope that can never be
// accepted (forged, malformed, replayed) is rejected on its own; a storage
// failure aborts the batch and every envelope is answered "retry". The
// error is for the log; responses already tell the sender what to do.
func (m *Messenger) receiveBatch(ctx context.Context, peer string, envs []*wirepb.Envelope) ([]*wirepb.Response, error) {
	return m.receiveSealed(ctx, peer, envs, nil)
}

// receiveSealed is receiveBatch for envelopes that came out of sealed
// boxes: hints[i] names the account that (says it) sent envs[i].
func (m *Messenger) receiveSealed(ctx context.Context, peer string, envs []*wirepb.Envelope, hints [][]byte) ([]*wirepb.Response, error) {
	resps := make([]*wirepb.Response, len(envs))
	// Initiations that start a new session cost a full PQXDH response: try
	// them first outside the write transaction, so that a flood of forged
	// ones is refused without stalling everyone else's messages.
	pre := make([]error, len(envs))
	for i, env := range envs {
		if len(env.Initiation) > 0 {
			pre[i] = m.precheckInitiation(ctx, peer, env)
		}
	}
	if peer == "" && len(hints) > 0 {
		m.precheckSealed(ctx, envs, hints, pre)
		if allFailed(pre) {
			// Junk only: answered without the write transaction.
			return m.refuseAll(envs, pre)
		}
	}
	var rx *batch
	var firstErr error
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		rx, firstErr = newBatch(), nil
		for i, env := range envs {
			r := &wirepb.Response{Version: wire.Version, MessageId: env.MessageId}
			resps[i] = r
			err := pre[i]
			rx.sealedFrom = nil
			if i < len(hints) {
				rx.sealedFrom = hints[i]
			}
			if err == nil {
				err = m.processEnvelope(tx, rx, peer, env, r)
			}
			if err == nil {
				continue
			}
			if !errors.Is(err, errRateLimited) && !errors.Is(err, errRequestLater) && !isPermanent(err) {
				return err
			}
			if refuse(r, err) && firstErr == nil {
				firstErr = err
			}
		}
		if err := m.flushAcks(tx, rx); err != nil {
			return err
		}
		return rx.flush(tx)
	})
	if err != nil {
		for i, env := range envs {
			resps[i] = &wirepb.Response{Version: wire.Version, MessageId: env.MessageId, Status: wirepb.Response_STATUS_RETRY, Error: "temporary failure"}
		}
		return resps, err
	}
	m.unindexed.Store(true)
	for _, e := range rx.events {
		m.emit(e)
	}
	for _, f := range rx.after {
		f()
	}
	return resps, firstErr
}

// refuse fills r for an envelope refused with err (permanent, or
// errRateLimited) and reports whether it is refused for good.
func refuse(r *wirepb.Response, err error) bool {
	if errors.Is(err, errRateLimited) {
		r.Status, r.Error = wirepb.Response_STATUS_RETRY, "too many new sessions: try later"
		return false
	}
	if errors.Is(err, errRequestLater) {
		r.Status, r.Error = wirepb.Response_STATUS_RETRY, "contact request pending: try later"
		return false
	}
	r.Status, r.Ack = wirepb.Response_STATUS_REJECTED, nil
	r.Error = "cannot decrypt or parse"
	switch {
	case errors.Is(err, ratchet.ErrReplay):
		r.Error = "replayed message"
	case errors.Is(err, ErrUnknownSender):
		r.Error = "unknown sender"
	case errors.Is(err, ErrRevokedDevice):
		r.Error = RefusedRevoked // the sending device learns why (devices.go)
	}
	return true
}

// refuseAll answers a batch whose every envelope was refused before the
// write transaction (pre[i] != nil for all i).
func (m *Messenger) refuseAll(envs []*wirepb.Envelope, pre []error) ([]*wirepb.Response, error) {
	resps := make([]*wirepb.Response, len(envs))
	var firstErr error
	for i, env := range envs {
		resps[i] = &wirepb.Response{Version: wire.Version, MessageId: env.MessageId}
		if refuse(resps[i], pre[i]) && firstErr == nil {
			firstErr = pre[i]
		}
	}
	return resps, firstErr
}

// errRateLimited is returned for an initiation over its device's limit.
var errRateLimited = errors.New("too many new sessions from this device")

// Limits of new sessions (PQXDH responses): a burst, then one every
// initRefill, per bucket. A contact's bucket is its own (by account); a
// stranger's is its device's (strangers from a mailbox, with no device to
// tell them apart, share one), so that a flood of strangers' initiations
// never spends a contact's (requests.go).
const (
	initBurst     = 16
	initRefill    = 2 * time.Second
	maxInitLimits = 10_000
)

// initLimiter is a token bucket per remote device.
type initLimiter struct {
	mu sync.Mutex
	b  map[string]*initBucket
}

type initBucket struct {
	tokens float64
	last   time.Time
}

func (l *initLimiter) allow(peer string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b == nil || len(l.b) > maxInitLimits {
		l.b = map[string]*initBucket{}
	}
	bk, ok := l.b[peer]
	if !ok {
		bk = &initBucket{tokens: initBurst, last: now}
		l.b[peer] = bk
	}
	bk.tokens = min(initBurst, bk.tokens+now.Sub(bk.last).Seconds()/initRefill.Seconds())
	bk.last = now
	if bk.tokens < 1 {
		return false
	}
	bk.tokens--
	return true
}

// precheckInitiation tries an envelope that starts a new session on copies
// of the state, in a read-only transaction. It returns a permanent error
// if the envelope can never be accepted, else nil (including when it is
// for an existing session: those are cheap and checked in the write).
func (m *Messenger) precheckInitiation(ctx context.Context, peer string, env *wirepb.Envelope) error {
	in, sender, err := initiationIdentity(env)
	if err != nil {
		return permanent(err)
	}
	var rec *wirepb.SessionRecord
	var prekeys *handshake.Prekeys
	acct := identity.AccountID(sender)
	known, blocked := false, false
	err = m.st.View(ctx, func(tx *store.Tx) error {
		rec = &wirepb.SessionRecord{Version: wire.Version}
		known, blocked = false, false
		if acct == m.acct {
			// Another device of ours: its session is kept apart from
			// any contact's (sentcopy.go). A repeat of an initiation it
			// already started is no new session, and its one-time
			// prekey is spent: checked against a blank record, it was
			// refused as "already used" (TestDevSyncUnknownDeviceWaits).
			own := peer != "" && peer != m.selfPeer()
			if own {
				if rec, err = loadDevRecord(tx, 0, peer); err != nil {
					return err
				}
			} else if peer == "" {
				// From our mailbox: a repeat is found on the session
				// of the device that started it (sentcopy.go).
				if r, found, err := ownRepeatRecord(tx, in); err != nil {
					return err
				} else if found {
					rec = r
				}
			}
			known = own
		} else if c, err := tx.ContactByAccount(acct); err == nil {
			known = c.Request.IsZero()
			if peer == "" {
				// From a mailbox: a repeat is found on whichever of the
				// contact's devices started it; a new session is checked
				// against a blank record (processEnvelope).
				if _, r, found, err := m.initiationRecord(tx, newBatch(), c, in); err != nil {
					return err
				} else if found {
					rec = r
				}
			} else if rec, err = loadDeviceRecord(tx, c, peer); err != nil {
				return err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		} else if blocked, err = tx.Blocked(acct, m.now()); err != nil {
			return err
		}
		b, err := tx.Blob(blobPrekeys)
		if err != nil {
			return err
		}
		prekeys, err = handshake.UnmarshalPrekeys(b)
		return err
	})
	if err != nil {
		return nil // let the write transaction report it
	}
	if blocked {
		return permanent(fmt.Errorf("%w: declined", ErrUnknownSender))
	}
	for _, e := range rec.Sessions {
		if bytes.Equal(e.PeerBaseKey, in.Ephemeral[:]) {
			return nil
		}
	}
	// A new session costs a full PQXDH response: each contact, and each
	// stranger's device, may ask for a few at a time, no more (a flood of
	// forged ones would burn CPU).
	bucket := "stranger/" + peer
	switch {
	case known && acct == m.acct:
		bucket = "own/" + peer
	case known:
		bucket = "contact/" + acct
	}
	if !m.initLimit.allow(bucket, m.now()) {
		return errRateLimited
	}
	if _, _, err := m.decrypt(rec, in, prekeys, env); err != nil {
		return permanent(err)
	}
	return nil
}

// processEnvelope handles one envelope inside a receive transaction and
// fills its response. It returns a permanent error (see isPermanent)
// before writing anything for an envelope that can never be accepted.
func (m *Messenger) processEnvelope(tx *store.Tx, rx *batch, peer string, env *wirepb.Envelope, resp *wirepb.Response) error {
	in, sender, err := initiationIdentity(env)
	if err != nil {
		return permanent(err)
	}
	// Find the contact: by the identity an initiation names, else by the
	// device the stream comes from, else (from a mailbox: sealed) by
	// trying our sessions.
	var c *store.Contact
	var rec *wirepb.SessionRecord
	var plain []byte
	sealed := in == nil && peer == ""
	rx.peer = peer // trialDecrypt sets the device that sent a sealed one
	switch {
	case sealed:
		if m.fromSelfHint(rx.sealedFrom) {
			// Another device of ours, through our mailbox (sentcopy.go); a
			// contact whose hint collides with ours is tried below.
			if err := m.receiveOwn(tx, rx, "", nil, env, resp); err == nil || !isPermanent(err) {
				return err
			}
		}
		if c, rec, plain, err = m.trialDecrypt(tx, rx, env); err != nil {
			return err
		}
	case in != nil:
		c, err = tx.ContactByAccount(identity.AccountID(sender))
	default:
		if c, err = rx.contactByPeer(tx, peer); errors.Is(err, store.ErrNotFound) {
			c, err = m.contactByDevice(tx, peer) // another linked device of a contact
		}
	}
	if errors.Is(err, store.ErrNotFound) && !sealed && m.fromOwnDevice(tx, peer, in) {
		return m.receiveOwn(tx, rx, peer, in, env, resp) // a sent copy (fanout.go)
	}
	if errors.Is(err, store.ErrNotFound) {
		if in == nil {
			return permanent(ErrUnknownSender)
		}
		c = nil
	} else if err != nil {
		return err
	}
	msgID := hex.EncodeToString(env.MessageId)
	if c != nil && !sealed && rx.pendingDuplicate(c.ID, env) {
		// The same envelope twice in one batch: one answer for both.
		rx.queueAck(c, env, resp, peer == "")
		return nil
	}
	if c != nil && !sealed {
		if in != nil && c.Card != nil {
			if card, err := identity.ParseSignedCard(c.Card); err == nil && !card.Identity.Equal(sender) {
				return permanent(fmt.Errorf("%w: identity mismatch", ErrUnknownSender))
			}
		}
		if h, ack, err := tx.Receipt(c.ID, msgID); err == nil {
			// Already stored: the sender missed our ack. Answer with the
			// very same ack bytes: a fresh ack would advance the ratchet,
			// and a stream of duplicates would push the sender's receiving
			// chain past its skip bound. An envelope with the same id but
			// other contents (the sender re-encrypted it, on a retry) must
			// decrypt first, below: a forgery does not.
			if bytes.Equal(h, envelopeHash(env)) {
				resp.Status, resp.Ack = wirepb.Response_STATUS_OK, ack
				return nil
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		} else if ack := m.receipts.get(c.ID, env); ack != nil {
			// A group control (or other envelope with no message row)
			// again: its ack went missing. Same answer, same bytes.
			resp.Status, resp.Ack = wirepb.Response_STATUS_OK, ack
			return nil
		}
	}
	var prekeys *handshake.Prekeys
	consumed := false
	// An initiation from a mailbox names no device: a repeat is decrypted
	// on the record of the device that started it; a new session starts
	// on a blank record and is filed, below, under the device that the
	// card it carries names first. (Filed under the primary device, the
	// session of another device was used for messages to the primary,
	// and that device's own resend of the envelope was refused.)
	fromMailbox := in != nil && peer == "" && c != nil
	if !sealed {
		rec = &wirepb.SessionRecord{Version: wire.Version}
		if fromMailbox {
			if p, r, found, err := m.initiationRecord(tx, rx, c, in); err != nil {
				return err
			} else if found {
				rx.peer, rec = p, r
				fromMailbox = false
			}
		} else if c != nil {
			if rec, err = rx.recordFor(tx, c, peer); err != nil {
				return err
			}
		}
		if in != nil {
			// Prekeys are read inside the transaction, so that two
			// initiations can never both consume one one-time prekey.
			b, err := tx.Blob(blobPrekeys)
			if err != nil {
				return err
			}
			if prekeys, err = handshake.UnmarshalPrekeys(b); err != nil {
				return err
			}
		}
		if plain, consumed, err = m.decrypt(rec, in, prekeys, env); err != nil {
			return permanent(err)
		}
	}
	p, err := openPayload(plain)
	if err != nil {
		return err
	}
	var card *identity.Card
	if len(p.SenderCard) > 0 {
		if card, err = identity.ParseSignedCard(p.SenderCard); err != nil {
			card = nil
		}
	}
	if c == nil {
		// A first message from someone who has our invite: they must
		// introduce themself with their own card, naming the device the
		// message comes from, which must not be another contact's.
		if card == nil || !card.Identity.Equal(in.Identity) {
			return permanent(fmt.Errorf("%w: first message without a valid card of the sender", ErrUnknownSender))
		}
		if err := m.checkCardDevice(tx, card, peer, 0); err != nil {
			return err
		}
		if blocked, err := tx.Blocked(card.AccountID(), m.now()); err != nil {
			return err
		} else if blocked {
			return permanent(fmt.Errorf("%w: declined", ErrUnknownSender))
		}
	} else if card != nil && m.checkCardDevice(tx, card, peer, c.ID) != nil {
		card = nil // a card naming someone else's device: keep the old one
	}
	// The device: the stream's, or (from a mailbox) the one whose session
	// a repeated initiation was found on; a revoked one is refused.
	if c != nil && !sealed && rx.peer != "" {
		if err := m.checkSenderDevice(tx, c, card, rx.peer); err != nil {
			return err
		}
	}
	if fromMailbox {
		// A new session from a mailbox: its device is the one the card
		// names first (checked above to be the contact's, and no other
		// contact's), else the primary one.
		dev := c.PeerID
		if card != nil {
			dev = card.Devices[0].PeerID
			if err := m.checkSenderDevice(tx, c, card, dev); err != nil {
				return err
			}
		}
		old, err := rx.recordFor(tx, c, dev)
		if err != nil {
			return err
		}
		rec.Sessions = append(rec.Sessions, old.Sessions...)
		rx.peer = dev
	}
	if t, ok := p.Body.(*wirepb.Payload_Text); ok && hex.EncodeToString(t.Text.MessageId) != msgID {
		return permanent(fmt.Errorf("%w: message id mismatch", ErrBadMessage))
	}
	// A stranger, or a pending request: a contact only with a reason
	// (an invite of ours, a group we share), else a request (requests.go).
	asRequest, later, err := m.classify(tx, c, card, p)
	if err != nil {
		return err
	}
	// All checks passed: from here on, write.
	if c == nil {
		if asRequest {
			c, err = m.newRequest(tx, card, p.SenderCard)
		} else {
			c, err = m.contactFromCard(tx, card, p.SenderCard)
		}
		if err != nil {
			return err
		}
		if asRequest {
			rx.events = append(rx.events, Event{Type: EventRequest, ContactID: c.ID, State: RequestNew})
		} else {
			rx.events = append(rx.events, Event{Type: EventContact, ContactID: c.ID})
		}
		rx.contactAdded()
		rx.byPeer[c.PeerID] = c
	} else {
		if card != nil {
			if err := m.refreshCard(tx, rx, c, card, p.SenderCard); err != nil {
				return err
			}
		}
		if !c.Request.IsZero() && !asRequest {
			evs, err := m.promote(tx, c, "")
			if err != nil {
				return err
			}
			rx.events = append(rx.events, evs...)
		}
	}
	if card != nil {
		if err := m.noteDeviceCard(tx, c.ID, c.AccountID, card, p.SenderCard); err != nil { // fanout.go
			return err
		}
	}
	if later {
		// Nothing of the session is kept: the sender tries again.
		if err := m.trimRequests(tx, rx, c.ID); err != nil {
			return err
		}
		return errRequestLater
	}
	if !sealed {
		if err := m.followDevice(tx, c, peer); err != nil {
			return err
		}
	}
	rx.setRecordFor(c, rx.peer, rec)
	if consumed {
		if err := tx.PutBlob(blobPrekeys, prekeys.Marshal()); err != nil {
			return err
		}
	}
	switch body := p.Body.(type) {
	case *wirepb.Payload_Sync:
		// Only our own devices sync with us (devsync.go).
		m.log.Info("deviceSyncRefused", "contact", identity.Short(c.AccountID), "device", shortPeer(peer))
		return permanent(ErrNotOwnDevice)
	case *wirepb.Payload_Text:
		t := body.Text
		msg := &store.Message{ID: msgID, ContactID: c.ID, Body: t.Body, SentAt: time.UnixMilli(t.SentAtUnixMs), At: m.now(), State: StateReceived}
		inserted, err := tx.InsertMessage(msg)
		if err != nil {
			return err
		}
		if !inserted {
			// A re-encrypted copy of a message we have: shown once, acked
			// with the stored ack if there is one.
			if _, ack, err := tx.Receipt(c.ID, msgID); err == nil {
				resp.Status, resp.Ack = wirepb.Response_STATUS_OK, ack
				return nil
			}
			rx.queueAck(c, env, resp, peer == "")
			return nil
		}
		if !c.Request.IsZero() {
			// A stranger's: kept in its request, its file not fetched, its
			// ack not sent from a mailbox (no traffic to a stranger's
			// device) until the request is accepted.
			if err := keepRequestAttachment(tx, c.ID, msgID, t.Attachment); err != nil {
				return err
			}
			if err := m.trimRequests(tx, rx, c.ID); err != nil {
				return err
			}
			rx.events = append(rx.events, Event{Type: EventRequest, ContactID: c.ID, MessageID: msgID, State: RequestMessage})
			rx.queueAck(c, env, resp, false)
			return nil
		}
		// Its file is fetched from the device that sent it (rx.peer: for
		// one from a mailbox, the device whose session read it).
		if err := m.receivedAttachment(tx, c, msgID, rx.peer, t.Attachment); err != nil {
			return err
		}
		rx.events = append(rx.events, Event{Type: EventMessage, ContactID: c.ID, MessageID: msgID, State: StateReceived})
		rx.queueAck(c, env, resp, peer == "")
		return nil
	case *wirepb.Payload_Group:
		if err := m.receiveGroupControl(tx, rx, c, body.Group); err != nil {
			return err
		}
		rx.queueAck(c, env, resp, peer == "")
		return nil
	case *wirepb.Payload_Ack:
		for _, id := range body.Ack.MessageIds {
			aid := hex.EncodeToString(id)
			cur, err := tx.Message(c.ID, true, aid)
			if errors.Is(err, store.ErrNotFound) && rx.peer != "" && rx.peer != c.PeerID {
				// A group control's copy for another device (fanout.go).
				if err := tx.DeleteDeviceItem(rx.peer, c.ID, groupItemPrefix+aid); err != nil {
					return err
				}
				rx.delivered[groupItemPrefix+aid] = true
				continue
			} else if errors.Is(err, store.ErrNotFound) {
				// Not a message: a group control item (groups.go), or
				// not ours, or already forgotten.
				queued, err := tx.Outbox(c.ID)
				if err != nil {
					return err
				}
				if !slices.ContainsFunc(queued, func(it store.OutboxItem) bool { return it.MessageID == groupItemPrefix+aid }) {
					if !rx.delivered[groupItemPrefix+aid] {
						m.fault(FaultUnknownAck, identity.Short(c.AccountID))
					}
				} else if err := tx.DeleteOutbox(c.ID, groupItemPrefix+aid); err != nil {
					return err
				}
				rx.delivered[groupItemPrefix+aid] = true
				continue
			} else if err != nil {
				return err
			}
			if err := m.deleteQueued(tx, c, rx.peer, aid); err != nil {
				return err
			}
			rx.delivered[aid] = true
			if stateRank[cur.State] < stateRank[StateDelivered] {
				if err := tx.SetMessageState(c.ID, true, aid, StateDelivered); err != nil {
					return err
				}
				rx.events = append(rx.events, Event{Type: EventState, ContactID: c.ID, MessageID: aid, State: StateDelivered})
			}
		}
		resp.Status = wirepb.Response_STATUS_OK
		return nil
	case *wirepb.Payload_Card:
		if err := m.receiveCardUpdate(tx, c, body.Card); err != nil { // cardpush.go
			return err
		}
		resp.Status = wirepb.Response_STATUS_OK
		return nil
	case *wirepb.Payload_Read:
		for _, id := range body.Read.MessageIds {
			rid := hex.EncodeToString(id)
			cur, err := tx.Message(c.ID, true, rid)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if stateRank[cur.State] >= stateRank[StateRead] {
				continue
			}
			// Read implies delivered: the ack may still be on its way.
			if err := m.deleteQueued(tx, c, rx.peer, rid); err != nil {
				return err
			}
			rx.delivered[rid] = true
			if err := tx.SetMessageState(c.ID, true, rid, StateRead); err != nil {
				return err
			}
			rx.events = append(rx.events, Event{Type: EventState, ContactID: c.ID, MessageID: rid, State: StateRead})
		}
		resp.Status = wirepb.Response_STATUS_OK
		return nil
	}
	return permanent(ErrBadMessage)
}

// isPermanent tells errors that retrying the same envelope cannot fix
// (bad crypto or content) from storage trouble (disk full, busy).
func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// flushAcks encrypts, for each contact whose messages this transaction
// stored, one ack naming all of them, and gives it to each of their
// responses: one ratchet message per batch instead of one per message. The
// ack is also kept as each message's receipt (a duplicate gets the same
// bytes back) and, for mail fetched from a mailbox, queued for delivery.
func (m *Messenger) flushAcks(tx *store.Tx, rx *batch) error {
	for _, k := range rx.ackOrder {
		pa, cid := rx.acks[k], k.cid
		rec, err := rx.recordFor(tx, pa.contact, k.peer)
		if err != nil {
			return err
		}
		ackID := make([]byte, wire.MessageIDSize)
		if _, err := io.ReadFull(m.rand, ackID); err != nil {
			return err
		}
		p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Ack{Ack: &wirepb.Ack{MessageIds: pa.ids}}}
		if pa.contact.Request.IsZero() { // a stranger gets no newer card of ours
			if err := m.attachCard(tx, cid, p); err != nil {
				return err
			}
		}
		sealed, err := m.encrypt(rec, pa.contact, ackID, p)
		if err != nil {
			return err
		}
		rx.setRecordFor(pa.contact, k.peer, rec)
		for i, resp := range pa.resps {
			resp.Status, resp.Ack = wirepb.Response_STATUS_OK, sealed.bytes
			// Group control items have no message row, hence no stored
			// receipt: theirs are kept in memory, once committed.
			err := tx.PutReceipt(cid, hex.EncodeToString(pa.ids[i]), pa.hashes[i], sealed.bytes)
			if errors.Is(err, store.ErrNotFound) {
				id, h, ack := hex.EncodeToString(pa.ids[i]), pa.hashes[i], sealed.bytes
				rx.after = append(rx.after, func() { m.receipts.put(cid, id, h, ack) })
			} else if err != nil {
				return err
			}
		}
		if pa.mailbox && k.peer != "" {
			// From another device of the contact: the ack goes to it.
			if err := m.queueDeviceAck(tx, pa.contact, k.peer, pa.ids[0], p); err != nil {
				return err
			}
		} else if pa.mailbox {
			// Nobody waits on a stream for this ack: it goes out like a
			// message (directly, or to the sender's mailbox hosts).
			err := tx.Enqueue(store.OutboxItem{MessageID: ackItemPrefix + hex.EncodeToString(pa.ids[0]), ContactID: cid, Payload: sealed.bytes, NextAttempt: m.now()})
			if err != nil && !errors.Is(err, store.ErrExists) {
				return err
			}
		}
	}
	clear(rx.acks)
	rx.ackOrder = rx.ackOrder[:0]
	return nil
}

// checkCardDevice checks that a card received from peer names that very
// device (the transport authenticated it) and that no other contact than
// self already uses it; otherwise one contact could take over another's
// device id and have its messages routed to itself.
func (m *Messenger) checkCardDevice(tx *store.Tx, card *identity.Card, peer string, self int64) error {
	if peer == "" && len(card.Devices) > 0 {
		peer = card.Devices[0].PeerID // from a mailbox: no transport to check it against
	}
	if !card.HasDevice(peer) {
		return permanent(fmt.Errorf("%w: card names another device than the sender's", ErrUnknownSender))
	}
	other, err := tx.ContactByPeer(peer)
	switch {
	case err == nil && other.ID != self:
		return permanent(fmt.Errorf("%w: device already belongs to another contact", ErrUnknownSender))
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	return nil
}

// envelopeHash identifies an envelope's contents for duplicate checks.
func envelopeHash(env *wirepb.Envelope) []byte {
	h := sha256.Sum256(env.Ciphertext)
	return h[:]
}

// contactFromCard adds the sender of a first message from the card it
// carried (already checked to be the initiation's identity).
func (m *Messenger) contactFromCard(tx *store.Tx, card *identity.Card, signed []byte) (*store.Contact, error) {
	c := &store.Contact{AccountID: card.AccountID(), Created: m.now()}
	applyCard(c, card, signed)
	var err error
	if c.Name, err = uniqueName(tx, card.Name); err != nil {
		return nil, err
	}
	if err := tx.AddContact(c); err != nil {
		return nil, err
	}
	m.devIdx.note(c.AccountID, card)
	if m.tr != nil && c.PeerID != "" {
		m.tr.AddAddrs(c.PeerID, c.Addrs)
	}
	return c, nil
}

// refreshCard stores a newer card a contact sent (new addresses, keys);
// rx is the receive batch, if any (cardpush.go: a dropped device).
func (m *Messenger) refreshCard(tx *store.Tx, rx *batch, c *store.Contact, card *identity.Card, signed []byte) error {
	if card.AccountID() != c.AccountID {
		return nil
	}
	old, err := identity.ParseSignedCard(c.Card)
	if err == nil && old.Serial >= card.Serial {
		return nil
	} else if err == nil && identity.CheckDeviceVersion(old, card) != nil {
		m.log.Info("cardRollbackRefused", "contact", identity.Short(c.AccountID))
		return nil
	} else if err == nil && otherDevicesCard(c, old, card) {
		return nil // kept as that device's own card (fanout.go)
	} else if err == nil && c.PeerID != "" && old.HasDevice(c.PeerID) && !card.HasDevice(c.PeerID) && card.DeviceVersion == old.DeviceVersion {
		// A device dropped without a new list version: a card a new
		// device signed before it had the list (cardpush.go), not a
		// revocation.
		m.log.Info("cardWithoutListChangeIgnored", "contact", identity.Short(c.AccountID))
		return nil
	} else if err != nil {
		old = nil
	}
	oldPeer, prev := c.PeerID, c.Card
	applyCard(c, card, signed)
	m.devIdx.note(c.AccountID, card)
	m.cardDroppedDevices(tx, c.AccountID, prev, card) // groups re-key without a revoked device (groupdevices.go)
	if err := tx.UpdateContact(c); err != nil {
		return nil
	}
	if m.tr != nil && c.PeerID != "" {
		m.tr.AddAddrs(c.PeerID, c.Addrs)
	}
	return m.cardApplied(tx, rx, c, old, card, oldPeer)
}

// ctlReceipts keeps, in memory, the acks of received envelopes that have
// no message row to hold a receipt (group controls): a copy of one (its
// ack was lost, and the sender retried) is answered with the same ack
// bytes instead of being refused as a replay, which the sender would
// never stop retrying. Bounded; after a restart such a copy is refused
// once (a group control is idempotent, so nothing is lost).
type ctlReceipts struct {
	mu sync.Mutex
	m  map[string]ctlReceipt
}

type ctlReceipt struct{ hash, ack []byte }

const maxCtlReceipts = 4096

func ctlKey(cid int64, id string) string { return fmt.Sprint(cid, "/", id) }

func (r *ctlReceipts) put(cid int64, id string, hash, ack []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]ctlReceipt{}
	}
	if len(r.m) >= maxCtlReceipts {
		for k := range r.m { // evict one at random
			delete(r.m, k)
			break
		}
	}
	r.m[ctlKey(cid, id)] = ctlReceipt{hash, ack}
}

// get returns the ack sent for this very envelope, or nil.
func (r *ctlReceipts) get(cid int64, env *wirepb.Envelope) []byte {
	r.mu.Lock()
	rc, ok := r.m[ctlKey(cid, hex.EncodeToString(env.MessageId))]
	r.mu.Unlock()
	if !ok || !bytes.Equal(rc.hash, envelopeHash(env)) {
		return nil
	}
	return rc.ack
}

// openPayload unpads and parses a decrypted envelope's plaintext; what
// does not parse is refused for good (ErrBadMessage).
func openPayload(plain []byte) (*wirepb.Payload, error) {
	unpadded, err := wire.Unpad(plain)
	if err != nil {
		return nil, permanent(fmt.Errorf("%w: %v", ErrBadMessage, err))
	}
	p, err := wire.ParsePayload(unpadded)
	if err != nil {
		return nil, permanent(fmt.Errorf("%w: %v", ErrBadMessage, err))
	}
	return p, nil
}
