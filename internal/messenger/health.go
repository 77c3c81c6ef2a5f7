package messenger

import (
	"fmt"
	"maps"
	"sync"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Faults: bad input and misbehaving peers (garbage or replayed envelopes,
// a peer answering with errors, a sender key for an unknown group, an ack
// for an unknown message) are counted by kind and logged once per kind and
// peer, without content; repeats go to the debug log. None of them may
// cause a loop: each is answered or dropped once, and retries follow the
// outbox's backoff.

// Fault kinds, the keys of Faults.
const (
	FaultBadFrame      = "badFrame"      // an unreadable frame reset a stream
	FaultRejected      = "rejected"      // we refused an envelope (forged, malformed, too old)
	FaultBadResponse   = "badResponse"   // a response that names another envelope, or none
	FaultRefused       = "refused"       // the peer refused one of our envelopes
	FaultUnreadableAck = "unreadableAck" // the peer's ack does not decrypt
	FaultUnknownAck    = "unknownAck"    // an ack naming nothing we sent
	FaultUnknownGroup  = "unknownGroup"  // a group control for a group we do not know
	FaultStaleGroupMsg = "staleGroupMsg" // a group message older than the sender key we were given
	FaultSessionReset  = "sessionReset"  // a fresh handshake after the peer kept refusing
)

// maxFaultKeys bounds the memory of what was logged already.
const maxFaultKeys = 4096

// faults counts faults and remembers which were logged.
type faults struct {
	mu     sync.Mutex
	count  map[string]uint64
	logged map[string]bool
	refuse map[int64]int // contact → refusals in a row
}

// fault counts one fault of kind from peer (a short peer id or account
// prefix, or "") and logs it the first time; attrs must carry no content.
func (m *Messenger) fault(kind, peer string, attrs ...any) {
	f := &m.faults
	f.mu.Lock()
	if f.count == nil {
		f.count, f.logged = map[string]uint64{}, map[string]bool{}
	}
	f.count[kind]++
	key := kind + "/" + peer
	first := !f.logged[key]
	if first {
		if len(f.logged) >= maxFaultKeys {
			clear(f.logged)
		}
		f.logged[key] = true
	}
	f.mu.Unlock()
	attrs = append([]any{"peer", peer}, attrs...)
	if first {
		m.log.Info(kind, attrs...)
	} else {
		m.log.Debug(kind, attrs...)
	}
}

// Faults returns how many faults of each kind were seen since start.
func (m *Messenger) Faults() map[string]uint64 {
	m.faults.mu.Lock()
	defer m.faults.mu.Unlock()
	return maps.Clone(m.faults.count)
}

// refusalsBeforeReset is how many of our envelopes in a row a contact's
// device must refuse as undecryptable (or from an unknown sender) before we
// start a fresh session with it.
const refusalsBeforeReset = 3

// noteRefusal counts a refusal by contact cid and reports whether the
// session should be started afresh now.
func (m *Messenger) noteRefusal(cid int64) bool {
	f := &m.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse == nil {
		f.refuse = map[int64]int{}
	}
	f.refuse[cid]++
	if f.refuse[cid] < refusalsBeforeReset {
		return false
	}
	delete(f.refuse, cid)
	return true
}

// noteAccepted forgets a contact's refusals: its device read us.
func (m *Messenger) noteAccepted(cid int64) {
	m.faults.mu.Lock()
	delete(m.faults.refuse, cid)
	m.faults.mu.Unlock()
}

// newSession starts a session with a contact from its card's prekeys. The
// entry carries the initiation until the peer answers on it.
func (m *Messenger) newSession(c *store.Contact) (*wirepb.SessionEntry, error) {
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil {
		return nil, fmt.Errorf("contact card: %w", err)
	}
	if card.Bundle == nil {
		return nil, ErrNoKeys
	}
	// One-time prekeys claimed from the contact's device, else the card's
	// signed and last-resort prekeys (prekeys.go).
	in, sess, err := handshake.Initiate(m.rand, m.id, m.sessionBundle(c.ID, card), m.cfg.Ratchet)
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	return &wirepb.SessionEntry{Ratchet: sess.Marshal(), Initiation: in.Marshal()}, nil
}

// restartSession heals a session the peer keeps refusing (it lost its
// state, restored an old copy, or dropped us): a fresh session goes in
// front, so that the next envelopes carry a new initiation and our card;
// the old sessions stay behind it, so whatever the peer still sends or
// acks on them decrypts.
func (m *Messenger) restartSession(tx *store.Tx, rx *batch, c *store.Contact) error {
	rec, err := rx.record(tx, c.ID)
	if err != nil {
		return err
	}
	e, err := m.newSession(c)
	if err != nil {
		return nil // nothing to start from: the messages stay failed
	}
	rec.Sessions = append([]*wirepb.SessionEntry{e}, rec.Sessions...)
	rx.setRecord(c.ID, rec)
	m.fault(FaultSessionReset, shortPeer(c.PeerID))
	return nil
}
