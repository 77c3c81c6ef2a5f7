package messenger

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
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

// ratchetCache keeps parsed ratchet sessions keyed by their exact
// serialised bytes: parsing one costs an X25519 scalar multiplication
// (crypto/ecdh derives the public key), more than the encryption itself.
// Keying by content keeps it correct whatever happens to transactions: a
// rolled-back change leaves the old bytes in the store, which then simply
// miss the cache.
type ratchetCache struct {
	mu sync.Mutex
	m  map[string]*ratchet.Session
}

const ratchetCacheSize = 1024

// load returns the session for b, parsed or cached; the caller owns it
// until it calls put (after changing it) or drops it.
func (rc *ratchetCache) load(b []byte, cfg ratchet.Config) (*ratchet.Session, error) {
	rc.mu.Lock()
	s, ok := rc.m[string(b)]
	if ok {
		delete(rc.m, string(b))
	}
	rc.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := ratchet.UnmarshalSession(b)
	if err != nil {
		return nil, err
	}
	s.SetConfig(cfg)
	return s, nil
}

// put caches s under its serialised form b.
func (rc *ratchetCache) put(b []byte, s *ratchet.Session) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.m == nil {
		rc.m = map[string]*ratchet.Session{}
	}
	if len(rc.m) >= ratchetCacheSize {
		for k := range rc.m { // evict one at random
			delete(rc.m, k)
			break
		}
	}
	rc.m[string(b)] = s
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
		e, err := m.newSession(c)
		if err != nil {
			return nil, err
		}
		rec.Sessions = []*wirepb.SessionEntry{e}
	}
	active := rec.Sessions[0]
	sess, err := m.ratchets.load(active.Ratchet, m.cfg.Ratchet)
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	ct, err := sess.Encrypt(m.rand, wire.Pad(wire.Marshal(p)))
	if err != nil {
		return nil, err
	}
	active.Ratchet = sess.Marshal()
	m.ratchets.put(active.Ratchet, sess)
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
// initiation names (or starting one with prekeys), else each session in
// turn. On success rec is updated (the session that worked becomes active)
// and consumed reports whether prekeys changed (a one-time prekey was
// used) and must be saved. It runs inside the caller's write transaction.
func (m *Messenger) decrypt(rec *wirepb.SessionRecord, in *handshake.Initiation, prekeys *handshake.Prekeys, env *wirepb.Envelope) (plain []byte, consumed bool, err error) {
	try := func(i int) ([]byte, error) {
		sess, err := m.ratchets.load(rec.Sessions[i].Ratchet, m.cfg.Ratchet)
		if err != nil {
			return nil, err
		}
		pt, err := sess.Decrypt(m.rand, env.Ciphertext)
		if err != nil {
			// Decrypt leaves the session as it was: keep it cached.
			m.ratchets.put(rec.Sessions[i].Ratchet, sess)
			return nil, err
		}
		e := rec.Sessions[i]
		e.Ratchet = sess.Marshal()
		m.ratchets.put(e.Ratchet, sess)
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
				return pt, false, err
			}
		}
		// A new session from the peer. Respond consumes the one-time
		// prekeys it names from prekeys; the caller saves them with the
		// session, in the same transaction.
		sess, err := handshake.Respond(m.id, prekeys, in, m.cfg.Ratchet)
		if err != nil {
			return nil, false, err
		}
		pt, err := sess.Decrypt(m.rand, env.Ciphertext)
		if err != nil {
			return nil, false, err
		}
		e := &wirepb.SessionEntry{Ratchet: sess.Marshal(), PeerBaseKey: append([]byte(nil), in.Ephemeral[:]...)}
		m.ratchets.put(e.Ratchet, sess)
		rec.Sessions = append([]*wirepb.SessionEntry{e}, rec.Sessions...)
		return pt, true, nil
	}
	var firstErr error
	for i := range rec.Sessions {
		pt, err := try(i)
		if err == nil {
			return pt, false, nil
		}
		if firstErr == nil || errors.Is(err, ratchet.ErrReplay) {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = ErrNoSession
	}
	return nil, false, firstErr
}
