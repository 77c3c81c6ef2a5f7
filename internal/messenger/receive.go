package messenger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// handleStream serves /samizdat/msg/1: a sequence of envelope frames, each
// answered in order with a response frame. Garbage or oversized frames
// reset the stream; the node carries on.
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
	for n := 0; n < maxFramesPerStream; n++ {
		_ = s.SetDeadline(time.Now().Add(m.cfg.StreamTimeout))
		b, err := wire.ReadFrame(s)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				m.log.Info("streamReset", "peer", shortPeer(peer), "err", err)
				_ = s.Reset()
			}
			return
		}
		env, err := wire.ParseEnvelope(b)
		if err != nil {
			m.log.Info("badEnvelope", "peer", shortPeer(peer), "err", err)
			_ = s.Reset()
			return
		}
		resp, err := m.receive(ctx, peer, env)
		if err != nil {
			m.log.Info("envelopeNotAccepted", "peer", shortPeer(peer), "err", err)
		}
		if err := wire.WriteFrame(s, wire.Marshal(resp)); err != nil {
			return
		}
	}
	_ = s.Reset()
}

// receive processes one envelope from peer and returns the response to
// send back (an encrypted ack for a stored text). The error, if any, is
// for the log; the response already says what the sender should do.
func (m *Messenger) receive(ctx context.Context, peer string, env *wirepb.Envelope) (*wirepb.Response, error) {
	resp := &wirepb.Response{Version: wire.Version, MessageId: env.MessageId}
	reject := func(err error, why string) (*wirepb.Response, error) {
		resp.Status, resp.Error = wirepb.Response_STATUS_REJECTED, why
		return resp, err
	}
	in, sender, err := initiationIdentity(env)
	if err != nil {
		return reject(err, "bad initiation")
	}
	// Find the contact: by the identity an initiation names, else by the
	// device the stream comes from.
	var c *store.Contact
	err = m.st.View(ctx, func(tx *store.Tx) (err error) {
		if in != nil {
			c, err = tx.ContactByAccount(identity.AccountID(sender))
		} else {
			c, err = tx.ContactByPeer(peer)
		}
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		resp.Status, resp.Error = wirepb.Response_STATUS_RETRY, "temporary failure"
		return resp, err
	}
	if c == nil && in == nil {
		return reject(ErrUnknownSender, "unknown sender")
	}
	acct := identity.AccountID(sender)
	if c != nil {
		acct = c.AccountID
		if in != nil && c.Card != nil {
			if card, err := identity.ParseSignedCard(c.Card); err == nil && !card.Identity.Equal(sender) {
				return reject(ErrUnknownSender, "identity mismatch")
			}
		}
	}
	l := m.lockFor(acct)
	l.Lock()
	defer l.Unlock()
	if in != nil {
		m.prekeyMu.Lock()
		defer m.prekeyMu.Unlock()
	}

	var events []Event
	var newPrekeys *handshake.Prekeys
	msgID := hex.EncodeToString(env.MessageId)
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		events, newPrekeys = nil, nil
		if c != nil {
			// Re-read inside the transaction: a concurrent add may have
			// changed it.
			if cc, err := tx.ContactByAccount(c.AccountID); err == nil {
				c = cc
			}
			if _, err := tx.Message(c.ID, false, msgID); err == nil {
				// Already stored: the sender missed our ack. Ack again.
				return m.ack(tx, c, resp, env.MessageId)
			}
		} else if cc, err := tx.ContactByAccount(acct); err == nil {
			c = cc
		}
		var rec *wirepb.SessionRecord
		if c != nil {
			var err error
			if rec, err = loadRecord(tx, c.ID); err != nil {
				return err
			}
		} else {
			rec = &wirepb.SessionRecord{Version: wire.Version}
		}
		plain, pk, err := m.decrypt(rec, in, env)
		if err != nil {
			return permanent(err)
		}
		newPrekeys = pk
		unpadded, err := wire.Unpad(plain)
		if err != nil {
			return permanent(fmt.Errorf("%w: %v", ErrBadMessage, err))
		}
		p, err := wire.ParsePayload(unpadded)
		if err != nil {
			return permanent(fmt.Errorf("%w: %v", ErrBadMessage, err))
		}
		if c == nil {
			// A first message from someone who has our invite: add them
			// from the card they sent, which must be theirs.
			if c, err = m.contactFromCard(tx, p.SenderCard, in); err != nil {
				return err
			}
			events = append(events, Event{Type: EventContact, ContactID: c.ID})
		} else if len(p.SenderCard) > 0 {
			m.refreshCard(tx, c, p.SenderCard)
		}
		if err := saveRecord(tx, c.ID, rec); err != nil {
			return err
		}
		if newPrekeys != nil {
			if err := tx.PutBlob(blobPrekeys, newPrekeys.Marshal()); err != nil {
				return err
			}
		}
		switch body := p.Body.(type) {
		case *wirepb.Payload_Text:
			t := body.Text
			if hex.EncodeToString(t.MessageId) != msgID {
				return permanent(fmt.Errorf("%w: message id mismatch", ErrBadMessage))
			}
			msg := &store.Message{ID: msgID, ContactID: c.ID, Body: t.Body, SentAt: time.UnixMilli(t.SentAtUnixMs), At: m.now(), State: StateReceived}
			if _, err := tx.InsertMessage(msg); err != nil {
				return err
			}
			events = append(events, Event{Type: EventMessage, ContactID: c.ID, MessageID: msgID, State: StateReceived})
			return m.ack(tx, c, resp, env.MessageId)
		case *wirepb.Payload_Ack:
			for _, id := range body.Ack.MessageIds {
				aid := hex.EncodeToString(id)
				cur, err := tx.Message(c.ID, true, aid)
				if err != nil {
					continue // not ours, or already forgotten
				}
				if err := tx.DeleteOutbox(c.ID, aid); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				if stateRank[cur.State] < stateRank[StateDelivered] {
					if err := tx.SetMessageState(c.ID, true, aid, StateDelivered); err != nil {
						return err
					}
					events = append(events, Event{Type: EventState, ContactID: c.ID, MessageID: aid, State: StateDelivered})
				}
			}
			resp.Status = wirepb.Response_STATUS_OK
			return nil
		}
		return permanent(ErrBadMessage)
	})
	if err != nil {
		switch {
		case errors.Is(err, ratchet.ErrReplay):
			return reject(err, "replayed message")
		case isPermanent(err):
			return reject(err, "cannot decrypt or parse")
		default:
			resp.Status, resp.Error = wirepb.Response_STATUS_RETRY, "temporary failure"
			resp.Ack = nil
			return resp, err
		}
	}
	if newPrekeys != nil {
		m.prekeys = newPrekeys
	}
	for _, e := range events {
		m.emit(e)
	}
	return resp, nil
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

// ack fills resp with an encrypted ack of msgID on the contact's active
// session. The caller saves nothing more: ack saves the session itself.
func (m *Messenger) ack(tx *store.Tx, c *store.Contact, resp *wirepb.Response, msgID []byte) error {
	rec, err := loadRecord(tx, c.ID)
	if err != nil {
		return err
	}
	ackID := make([]byte, wire.MessageIDSize)
	if _, err := io.ReadFull(m.rand, ackID); err != nil {
		return err
	}
	p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Ack{Ack: &wirepb.Ack{MessageIds: [][]byte{msgID}}}}
	s, err := m.encrypt(rec, c, ackID, p)
	if err != nil {
		return err
	}
	if err := saveRecord(tx, c.ID, rec); err != nil {
		return err
	}
	resp.Status, resp.Ack = wirepb.Response_STATUS_OK, s.bytes
	return nil
}

// contactFromCard adds the sender of a first message from the card inside
// it; the card must belong to the identity of the initiation.
func (m *Messenger) contactFromCard(tx *store.Tx, signed []byte, in *handshake.Initiation) (*store.Contact, error) {
	if len(signed) == 0 || in == nil {
		return nil, permanent(ErrUnknownSender)
	}
	card, err := identity.ParseSignedCard(signed)
	if err != nil {
		return nil, permanent(fmt.Errorf("%w: %v", ErrUnknownSender, err))
	}
	if !card.Identity.Equal(in.Identity) {
		return nil, permanent(fmt.Errorf("%w: card of another identity", ErrUnknownSender))
	}
	c := &store.Contact{AccountID: card.AccountID(), Created: m.now()}
	applyCard(c, card, signed)
	if c.Name, err = uniqueName(tx, card.Name); err != nil {
		return nil, err
	}
	if err := tx.AddContact(c); err != nil {
		return nil, err
	}
	if m.tr != nil && c.PeerID != "" {
		m.tr.AddAddrs(c.PeerID, c.Addrs)
	}
	return c, nil
}

// refreshCard stores a newer card a contact sent (new addresses, keys).
func (m *Messenger) refreshCard(tx *store.Tx, c *store.Contact, signed []byte) {
	card, err := identity.ParseSignedCard(signed)
	if err != nil || card.AccountID() != c.AccountID {
		return
	}
	if old, err := identity.ParseSignedCard(c.Card); err == nil && old.Serial >= card.Serial {
		return
	}
	applyCard(c, card, signed)
	if err := tx.UpdateContact(c); err == nil && m.tr != nil && c.PeerID != "" {
		m.tr.AddAddrs(c.PeerID, c.Addrs)
	}
}
