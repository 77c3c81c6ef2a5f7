package messenger

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// A contact's sessions are kept as a small list, the active one first, as
// Signal does: when both sides initiate at once each ends up with two
// sessions, and a message on either must still decrypt. The list is
// bounded; the oldest session is dropped.

// ErrNoSession is returned when an envelope matches none of a contact's
// sessions and starts none.
var ErrNoSession = errors.New("no session for this message")

func loadRecord(tx *store.Tx, contactID int64) (*wirepb.SessionRecord, error) {
	b, err := tx.Session(contactID)
	if errors.Is(err, store.ErrNotFound) {
		return &wirepb.SessionRecord{Version: wire.Version}, nil
	} else if err != nil {
		return nil, err
	}
	return wire.ParseSessionRecord(b)
}

func saveRecord(tx *store.Tx, contactID int64, rec *wirepb.SessionRecord) error {
	if len(rec.Sessions) > maxSessionsPerContact {
		rec.Sessions = rec.Sessions[:maxSessionsPerContact]
	}
	return tx.PutSession(contactID, wire.Marshal(rec))
}

// sealed is an encrypted envelope ready for the wire.
type sealed struct {
	env        *wirepb.Envelope
	bytes      []byte
	initiating bool // the envelope carries an initiation
}

// encrypt seals a payload to a contact on its active session, starting a
// session from the contact's card if there is none. The caller holds the
// contact's lock and saves rec.
func (m *Messenger) encrypt(rec *wirepb.SessionRecord, c *store.Contact, msgID []byte, p *wirepb.Payload) (*sealed, error) {
	if len(rec.Sessions) == 0 {
		card, err := identity.ParseSignedCard(c.Card)
		if err != nil {
			return nil, fmt.Errorf("contact card: %w", err)
		}
		if card.Bundle == nil {
			return nil, ErrNoKeys
		}
		in, sess, err := handshake.Initiate(m.rand, m.id, card.Bundle, m.cfg.Ratchet)
		if err != nil {
			return nil, fmt.Errorf("start session: %w", err)
		}
		rec.Sessions = []*wirepb.SessionEntry{{Ratchet: sess.Marshal(), Initiation: in.Marshal()}}
	}
	active := rec.Sessions[0]
	sess, err := ratchet.UnmarshalSession(active.Ratchet)
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	sess.SetConfig(m.cfg.Ratchet)
	ct, err := sess.Encrypt(m.rand, wire.Pad(wire.Marshal(p)))
	if err != nil {
		return nil, err
	}
	active.Ratchet = sess.Marshal()
	env := &wirepb.Envelope{Version: wire.Version, MessageId: msgID, Initiation: active.Initiation, Ciphertext: ct}
	return &sealed{env: env, bytes: wire.Marshal(env), initiating: len(active.Initiation) > 0}, nil
}

// initiationIdentity returns the sender identity named by an envelope's
// initiation, if it has one.
func initiationIdentity(env *wirepb.Envelope) (*handshake.Initiation, keys.PublicIdentity, error) {
	if len(env.Initiation) == 0 {
		return nil, keys.PublicIdentity{}, nil
	}
	in, err := handshake.ParseInitiation(env.Initiation)
	if err != nil {
		return nil, keys.PublicIdentity{}, err
	}
	return in, in.Identity, nil
}

// decrypt opens an envelope from a contact, trying the session its
// initiation names (or starting it), else each session in turn. On success
// rec is updated (the session that worked becomes active) and, if a
// one-time prekey was used, newPrekeys holds the prekeys to persist. The
// caller holds the contact's lock and m.prekeyMu when in != nil.
func (m *Messenger) decrypt(rec *wirepb.SessionRecord, in *handshake.Initiation, env *wirepb.Envelope) (plain []byte, newPrekeys *handshake.Prekeys, err error) {
	try := func(i int) ([]byte, error) {
		sess, err := ratchet.UnmarshalSession(rec.Sessions[i].Ratchet)
		if err != nil {
			return nil, err
		}
		sess.SetConfig(m.cfg.Ratchet)
		pt, err := sess.Decrypt(m.rand, env.Ciphertext)
		if err != nil {
			return nil, err
		}
		e := rec.Sessions[i]
		e.Ratchet = sess.Marshal()
		e.Initiation = nil // the peer has this session: no need to initiate again
		// Promote to active.
		copy(rec.Sessions[1:i+1], rec.Sessions[:i])
		rec.Sessions[0] = e
		return pt, nil
	}
	if in != nil {
		for i, e := range rec.Sessions {
			if bytes.Equal(e.PeerBaseKey, in.Ephemeral[:]) {
				pt, err := try(i)
				return pt, nil, err
			}
		}
		// A new session from the peer: answer the initiation with a copy of
		// the prekeys, so that a failure consumes nothing.
		pk, err := handshake.UnmarshalPrekeys(m.prekeys.Marshal())
		if err != nil {
			return nil, nil, err
		}
		sess, err := handshake.Respond(m.id, pk, in, m.cfg.Ratchet)
		if err != nil {
			return nil, nil, err
		}
		pt, err := sess.Decrypt(m.rand, env.Ciphertext)
		if err != nil {
			return nil, nil, err
		}
		e := &wirepb.SessionEntry{Ratchet: sess.Marshal(), PeerBaseKey: append([]byte(nil), in.Ephemeral[:]...)}
		rec.Sessions = append([]*wirepb.SessionEntry{e}, rec.Sessions...)
		return pt, pk, nil
	}
	var firstErr error
	for i := range rec.Sessions {
		pt, err := try(i)
		if err == nil {
			return pt, nil, nil
		}
		if firstErr == nil || errors.Is(err, ratchet.ErrReplay) {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = ErrNoSession
	}
	return nil, nil, firstErr
}
