package messenger

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Contact requests (issue 14): a stranger's first message does not make a
// contact. Whoever writes first without a reason we can check is filed as
// a pending request — its card, its session and its messages kept, acked
// on the stream that brought them, shown nowhere but in the request list —
// until the user accepts (a contact: the messages appear in its chat) or
// declines (all of it deleted, the account refused for DeclineBlock).
//
// A first message is from no stranger, and makes a contact at once, when
// it proves a one-time secret of an invite we issued (long or short:
// Payload.invite_proof, identity.InviteProof), or when it is a group
// control of a group we are in, from one of its members (group members
// reach each other over 1:1 sessions without being each other's contacts).
// Merely holding our card (forwarded, or read from the DHT) is no reason.
//
// Bounds: at most MaxRequests requests and MaxRequestBytes held by all of
// them (cards, message bodies, attachment manifests); a new one beyond
// either bound drops the oldest requests first. One request holds at most
// MaxRequestMessages messages and MaxRequestSize bytes: later messages are
// answered "retry" and so stay with their sender, who delivers them once
// the request is accepted (or gives up after Config.GiveUpAfter).
//
// New sessions from strangers have their own rate bucket (receive.go):
// a flood of them never spends the bucket a contact's new session needs.

// Bounds of the request list.
const (
	MaxRequests        = 100
	MaxRequestBytes    = 2 << 20
	MaxRequestMessages = 32
	MaxRequestSize     = 256 << 10
	// DeclineBlock is how long a declined account's messages are refused.
	DeclineBlock = 30 * 24 * time.Hour
)

// EventRequest is the event type of the request list: State says what
// happened to request ContactID (one of the Request* states).
const EventRequest = "request"

// States of an EventRequest.
const (
	RequestNew      = "new"      // a stranger's first message (or group invitation) arrived
	RequestMessage  = "message"  // another message was added to a request
	RequestAccepted = "accepted" // it became a contact (an EventContact follows)
	RequestDeclined = "declined" // deleted, and its account refused for a while
	RequestDropped  = "dropped"  // deleted to keep the list in its bounds
)

// ErrUnknownRequest is returned by AcceptRequest and DeclineRequest when
// the id or account id names no pending request.
var ErrUnknownRequest = errors.New("no such contact request")

// errRequestLater is returned for an envelope of a stranger that cannot be
// taken now (its request is full, or it is a group control for a group we
// do not share): answered "retry", it stays with its sender.
var errRequestLater = errors.New("contact request pending: try again once accepted")

// RequestInfo is a pending request as the API shows it.
type RequestInfo struct {
	ID           int64           `json:"id"`
	Name         string          `json:"name"` // from its card, cleaned (CleanName)
	AccountID    string          `json:"accountId"`
	SafetyNumber string          `json:"safetyNumber"`
	Received     time.Time       `json:"received"`
	Bytes        int64           `json:"bytes"`
	Messages     []store.Message `json:"messages"`
}

// requestName is the placeholder name of a pending request's row: names
// are unique, and a stranger must not take the name a contact will want.
func requestName(acct string) string { return "request " + acct }

// blobRequestAttachments prefixes the attachment manifests of a request's
// messages, kept until it is accepted (a stranger's file is not fetched).
func blobRequestAttachments(cid int64) string {
	return "request.att." + strconv.FormatInt(cid, 10) + "."
}

// blobInviteProof names the invite proof we send a contact added from an
// invite with a secret, until it answers.
func blobInviteProof(cid int64) string { return "invite.proof." + strconv.FormatInt(cid, 10) }

// inviteProofValid reports whether proof proves a live secret of one of our
// invites for a first message from account from.
func (m *Messenger) inviteProofValid(tx *store.Tx, from string, proof []byte) (bool, error) {
	if len(proof) == 0 {
		return false, nil
	}
	b, err := tx.Blob(blobShortSecrets)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	ok := false
	for _, r := range liveSecrets(b, m.now()) {
		want := identity.InviteProof(r[:identity.ShortSecretSize], from, m.acct)
		ok = hmac.Equal(want, proof) || ok // no early exit: constant work
	}
	return ok, nil
}

// groupVouches reports whether p is a group control of a group we are in,
// from one of its members.
func (m *Messenger) groupVouches(tx *store.Tx, from string, p *wirepb.Payload) (bool, error) {
	body, ok := p.Body.(*wirepb.Payload_Group)
	if !ok {
		return false, nil
	}
	g, err := tx.Group(body.Group.GroupId)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if len(g.Secret) == 0 || g.Gone {
		return false, nil
	}
	st, err := m.loadState(tx, g.ID)
	if err != nil {
		return false, err
	}
	return st.isMember(m.acct) && st.isMember(from), nil
}

// firstContact decides, for a message of a stranger (c == nil) or of a
// pending request, whether the sender becomes a contact at once.
func (m *Messenger) firstContact(tx *store.Tx, from string, p *wirepb.Payload) (bool, error) {
	if ok, err := m.inviteProofValid(tx, from, p.InviteProof); ok || err != nil {
		return ok, err
	}
	return m.groupVouches(tx, from, p)
}

// classify decides what a message of a stranger (c == nil: card is the
// one it carried) or of a pending request makes: a request (asRequest), or
// a contact. later: a group control of a group we do not share, which
// waits (errRequestLater) until the request is accepted. For a contact's
// message it returns false, false.
func (m *Messenger) classify(tx *store.Tx, c *store.Contact, card *identity.Card, p *wirepb.Payload) (asRequest, later bool, err error) {
	if c != nil && c.Request.IsZero() {
		return false, false, nil
	}
	var from string
	if c != nil {
		from = c.AccountID
	} else {
		from = card.AccountID() // checked by the caller: a stranger's first message has one
	}
	ok, err := m.firstContact(tx, from, p)
	if err != nil || ok {
		return false, false, err
	}
	switch body := p.Body.(type) {
	case *wirepb.Payload_Text:
		return true, false, requestRoom(tx, c, len(body.Text.Body)+len(body.Text.Attachment))
	case *wirepb.Payload_Group:
		return true, true, nil // filed as a request, taken once accepted
	}
	if c == nil {
		return false, false, permanent(fmt.Errorf("%w: a first message that is no text", ErrUnknownSender))
	}
	return true, false, nil
}

// requestRoom checks that request c (nil: a new one) can take one more
// message of n bytes; errRequestLater if not.
func requestRoom(tx *store.Tx, c *store.Contact, n int) error {
	if c == nil {
		if n > MaxRequestSize {
			return errRequestLater
		}
		return nil
	}
	sizes, err := tx.RequestSizes(blobRequestAttachments)
	if err != nil {
		return err
	}
	for _, s := range sizes {
		if s.ID == c.ID && (s.Messages >= MaxRequestMessages || s.Bytes+int64(n) > MaxRequestSize) {
			return errRequestLater
		}
	}
	return nil
}

// newRequest files a stranger's card as a pending request.
func (m *Messenger) newRequest(tx *store.Tx, card *identity.Card, signed []byte) (*store.Contact, error) {
	now := m.now()
	c := &store.Contact{AccountID: card.AccountID(), Name: requestName(card.AccountID()), Created: now, Request: now}
	applyCard(c, card, signed)
	if err := tx.AddContact(c); err != nil {
		return nil, err
	}
	return c, nil
}

// trimRequests drops the oldest requests (never keep) until the list is in
// its bounds.
func (m *Messenger) trimRequests(tx *store.Tx, rx *batch, keep int64) error {
	sizes, err := tx.RequestSizes(blobRequestAttachments)
	if err != nil {
		return err
	}
	var total int64
	for _, s := range sizes {
		total += s.Bytes
	}
	count := len(sizes)
	for _, s := range sizes {
		if count <= MaxRequests && total <= MaxRequestBytes {
			break
		}
		if s.ID == keep {
			continue
		}
		if err := m.deleteRequest(tx, s.ID); err != nil {
			return err
		}
		rx.forget(s.ID)
		rx.events = append(rx.events, Event{Type: EventRequest, ContactID: s.ID, State: RequestDropped})
		m.log.Info("requestDropped", "messages", s.Messages, "bytes", s.Bytes)
		count--
		total -= s.Bytes
	}
	return nil
}

// deleteRequest deletes a request and what is kept with it.
func (m *Messenger) deleteRequest(tx *store.Tx, cid int64) error {
	names, err := tx.BlobNames(blobRequestAttachments(cid))
	if err != nil {
		return err
	}
	names = append(names, blobCardSent(cid), blobInviteProof(cid))
	for _, n := range names {
		if err := tx.DeleteBlob(n); err != nil {
			return err
		}
	}
	m.cardSentMu.Lock()
	delete(m.cardSent, cid)
	m.cardSentMu.Unlock()
	return tx.DeleteContact(cid)
}

// keepRequestAttachment keeps the manifest of a request's message until it
// is accepted.
func keepRequestAttachment(tx *store.Tx, cid int64, msgID string, manifest []byte) error {
	if len(manifest) == 0 {
		return nil
	}
	return tx.PutBlob(blobRequestAttachments(cid)+msgID, manifest)
}

// promote makes pending request c a contact, named name (empty: after its
// card): its kept attachments start, and an ack goes out for every message
// it sent (those from a mailbox were not acked yet). It returns the events
// to emit once committed.
func (m *Messenger) promote(tx *store.Tx, c *store.Contact, name string) ([]Event, error) {
	if c.Request.IsZero() {
		return nil, nil
	}
	c.Request = time.Time{}
	if name == "" {
		card, err := identity.ParseSignedCard(c.Card)
		suggested := ""
		if err == nil {
			suggested = card.Name
		}
		if name, err = uniqueName(tx, suggested); err != nil {
			return nil, err
		}
	} else if other, err := tx.ContactByName(name); err == nil && other.ID != c.ID {
		return nil, fmt.Errorf("%w: the name %q is already used by another contact", store.ErrExists, name)
	}
	c.Name = name
	if err := tx.UpdateContact(c); err != nil {
		return nil, err
	}
	names, err := tx.BlobNames(blobRequestAttachments(c.ID))
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		manifest, err := tx.Blob(n)
		if err != nil {
			return nil, err
		}
		if err := m.receivedAttachment(tx, c, strings.TrimPrefix(n, blobRequestAttachments(c.ID)), "", manifest); err != nil {
			return nil, err
		}
		if err := tx.DeleteBlob(n); err != nil {
			return nil, err
		}
	}
	if err := m.ackRequest(tx, c); err != nil {
		return nil, err
	}
	return []Event{
		{Type: EventRequest, ContactID: c.ID, State: RequestAccepted},
		{Type: EventContact, ContactID: c.ID},
	}, nil
}

// ackRequest queues one ack naming every message received from c.
func (m *Messenger) ackRequest(tx *store.Tx, c *store.Contact) error {
	msgs, err := tx.Messages(c.ID, 0, 0)
	if err != nil {
		return err
	}
	var ids [][]byte
	for _, msg := range msgs {
		if b, err := hex.DecodeString(msg.ID); err == nil && !msg.Outgoing && len(b) == wire.MessageIDSize {
			ids = append(ids, b)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rec, err := loadRecord(tx, c.ID)
	if err != nil || len(rec.Sessions) == 0 {
		return err
	}
	ackID := make([]byte, wire.MessageIDSize)
	if _, err := io.ReadFull(m.rand, ackID); err != nil {
		return err
	}
	p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Ack{Ack: &wirepb.Ack{MessageIds: ids}}}
	if err := m.attachCard(tx, c.ID, p); err != nil {
		return err
	}
	s, err := m.encrypt(rec, c, ackID, p)
	if err != nil {
		return err
	}
	if err := saveRecord(tx, c.ID, rec); err != nil {
		return err
	}
	err = tx.Enqueue(store.OutboxItem{MessageID: ackItemPrefix + hex.EncodeToString(ackID), ContactID: c.ID, Payload: s.bytes, NextAttempt: m.now()})
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

// requestByRef finds a pending request by id or account id.
func requestByRef(tx *store.Tx, ref string) (*store.Contact, error) {
	ref = strings.TrimSpace(ref)
	var c *store.Contact
	var err error
	if id, perr := strconv.ParseInt(ref, 10, 64); perr == nil {
		c, err = tx.Contact(id)
	} else {
		c, err = tx.ContactByAccount(strings.ToLower(ref))
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Request.IsZero()) {
		return nil, fmt.Errorf("%w: %q (see samizdat requests)", ErrUnknownRequest, ref)
	}
	return c, err
}

// Requests lists the pending contact requests, oldest first, each with
// its messages.
func (m *Messenger) Requests(ctx context.Context) ([]RequestInfo, error) {
	out := []RequestInfo{}
	err := m.st.View(ctx, func(tx *store.Tx) error {
		out = out[:0]
		rs, err := tx.Requests()
		if err != nil {
			return err
		}
		sizes, err := tx.RequestSizes(blobRequestAttachments)
		if err != nil {
			return err
		}
		bytes := map[int64]int64{}
		for _, s := range sizes {
			bytes[s.ID] = s.Bytes
		}
		for i := range rs {
			c := &rs[i]
			ri := RequestInfo{ID: c.ID, AccountID: c.AccountID, Received: c.Request, Bytes: bytes[c.ID]}
			if card, err := identity.ParseSignedCard(c.Card); err == nil {
				ri.Name = CleanName(card.Name)
				ri.SafetyNumber = identity.SafetyNumber(m.id.Public(), card.Identity)
			}
			if ri.Messages, err = tx.Messages(c.ID, 0, 0); err != nil {
				return err
			}
			if ri.Messages == nil {
				ri.Messages = []store.Message{}
			}
			out = append(out, ri)
		}
		return nil
	})
	return out, err
}

// AcceptRequest makes a pending request (by id or account id) a contact,
// named name (empty: the name on its card, made unique): its messages
// appear in its chat and are acked.
func (m *Messenger) AcceptRequest(ctx context.Context, ref, name string) (ContactInfo, error) {
	name = strings.TrimSpace(name)
	if err := validName(name); err != nil {
		return ContactInfo{}, err
	}
	var c *store.Contact
	var events []Event
	err := m.st.Update(ctx, func(tx *store.Tx) (err error) {
		if c, err = requestByRef(tx, ref); err != nil {
			return err
		}
		if events, err = m.promote(tx, c, name); err != nil {
			return err
		}
		return m.syncContact(tx, c, false) // devsync.go: accepted on our other devices too
	})
	if err != nil {
		return ContactInfo{}, err
	}
	m.unindexed.Store(true)
	if m.tr != nil && c.PeerID != "" {
		m.tr.AddAddrs(c.PeerID, c.Addrs)
	}
	for _, e := range events {
		m.emit(e)
	}
	m.wake()
	return m.contactInfo(c), nil
}

// DeclineRequest deletes a pending request (by id or account id) with its
// messages and refuses its account's messages for DeclineBlock, until the
// time it returns.
func (m *Messenger) DeclineRequest(ctx context.Context, ref string) (time.Time, error) {
	var id int64
	until := m.now().Add(DeclineBlock)
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		c, err := requestByRef(tx, ref)
		if err != nil {
			return err
		}
		id = c.ID
		if err := m.deleteRequest(tx, c.ID); err != nil {
			return err
		}
		return tx.Block(c.AccountID, until, m.now())
	})
	if err != nil {
		return time.Time{}, err
	}
	m.emit(Event{Type: EventRequest, ContactID: id, State: RequestDeclined})
	return until, nil
}
