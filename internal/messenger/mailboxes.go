package messenger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Offline delivery through mailbox hosts (DESIGN §7, issue 4, first part):
// the card lists the hosts that keep our mail under a mailbox id only we
// can fetch from; a sender who cannot reach us directly deposits the same
// envelopes there (marked sent on the first accept, kept queued until our
// encrypted ack); we fetch on start, when a host connects and periodically,
// process the envelopes as if they came directly (the sender is found by
// its initiation or by trying our sessions: the host names nobody), queue
// the acks for delivery like any message, and delete what we processed.

// MailboxHost is a node that keeps our mail (a samizdat relay, or any
// node run with --serve-mailbox).
type MailboxHost struct {
	PeerID string
	Addrs  []string
}

const (
	blobMailboxKey = "mailbox.key"
	// DefaultFetchInterval is how often mailboxes are checked.
	DefaultFetchInterval = 30 * time.Second
	// maxDepositHosts bounds how many of a contact's hosts get a copy.
	maxDepositHosts = 3
	// ackItemPrefix marks outbox items that carry an ack, not a message.
	ackItemPrefix = "ack-"
	fetchPage     = 100
)

// maxDepositedMemo bounds the memory of what was deposited.
const maxDepositedMemo = 100_000

func depositKey(cid int64, cardSerial uint64, msgID string) string {
	return strconv.FormatInt(cid, 10) + "/" + strconv.FormatUint(cardSerial, 10) + "/" + msgID
}

func isAckItem(it store.OutboxItem) bool { return strings.HasPrefix(it.MessageID, ackItemPrefix) }

// Mailbox ids rotate (DESIGN §11: a host must not link a user over time):
// when our card is re-signed and the current mailbox key is at least
// Config.MailboxRotateAfter old, a new key (hence a new mailbox id) goes
// in the card. Contacts learn the new card with our next message or ack
// to them; until then they deposit under an older id, so superseded keys
// are still fetched for DefaultMailboxKeep, then forgotten.

// errCorruptKeys is returned when the stored mailbox keys are damaged.
var errCorruptKeys = errors.New("damaged mailbox keys in the profile")

// mailboxKey is one of our mailbox keys.
type mailboxKey struct {
	key   ed25519.PrivateKey
	since time.Time // when it became the current key
	until time.Time // when it was superseded; zero for the current key
}

const (
	blobMailboxKeys = "mailbox.keys"
	// DefaultMailboxRotateAfter is the least age of a mailbox key before
	// a card update replaces it.
	DefaultMailboxRotateAfter = 24 * time.Hour
	// DefaultMailboxKeep is how long a superseded key is still fetched:
	// as long as hosts keep mail (mailbox.DefaultTTL).
	DefaultMailboxKeep = mailbox.DefaultTTL
	// maxMailboxKeys bounds the keys fetched (the oldest go first).
	maxMailboxKeys   = 32
	mailboxKeyRecord = 8 + 8 + ed25519.PrivateKeySize
)

func marshalMailboxKeys(ks []mailboxKey) []byte {
	out := make([]byte, 0, len(ks)*mailboxKeyRecord)
	for _, k := range ks {
		var until int64
		if !k.until.IsZero() {
			until = k.until.UnixNano()
		}
		out = binary.BigEndian.AppendUint64(out, uint64(k.since.UnixNano()))
		out = binary.BigEndian.AppendUint64(out, uint64(until))
		out = append(out, k.key...)
	}
	return out
}

func parseMailboxKeys(b []byte) ([]mailboxKey, error) {
	if len(b)%mailboxKeyRecord != 0 {
		return nil, fmt.Errorf("%w: mailbox keys record of %d bytes", errCorruptKeys, len(b))
	}
	var ks []mailboxKey
	for ; len(b) > 0; b = b[mailboxKeyRecord:] {
		k := mailboxKey{
			since: time.Unix(0, int64(binary.BigEndian.Uint64(b))),
			key:   ed25519.PrivateKey(bytes.Clone(b[16:mailboxKeyRecord])),
		}
		if u := int64(binary.BigEndian.Uint64(b[8:])); u != 0 {
			k.until = time.Unix(0, u)
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// loadMailboxKey reads (or creates) our mailbox keys, forgetting those
// superseded more than DefaultMailboxKeep ago.
func (m *Messenger) loadMailboxKey(ctx context.Context) error {
	var ks []mailboxKey
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		ks = nil
		b, err := tx.Blob(blobMailboxKeys)
		switch {
		case err == nil:
			if ks, err = parseMailboxKeys(b); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if len(ks) == 0 {
			// A profile from before rotation has one key.
			if b, err := tx.Blob(blobMailboxKey); err == nil && len(b) == ed25519.PrivateKeySize {
				ks = []mailboxKey{{key: ed25519.PrivateKey(b), since: m.now()}}
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if len(ks) == 0 {
			k, err := mailbox.NewKey()
			if err != nil {
				return err
			}
			ks = []mailboxKey{{key: k, since: m.now()}}
		}
		now := m.now()
		kept := ks[:0]
		for _, k := range ks {
			if k.until.IsZero() || now.Sub(k.until) < DefaultMailboxKeep {
				kept = append(kept, k)
			}
		}
		ks = kept
		return tx.PutBlob(blobMailboxKeys, marshalMailboxKeys(ks))
	})
	if err != nil {
		return err
	}
	m.mbMu.Lock()
	m.mbKeys, m.mbKey = ks, ks[len(ks)-1].key
	m.mbMu.Unlock()
	return nil
}

// maybeRotateMailbox replaces the current mailbox key by a new one if it
// is old enough (called, under rotateMu, when our card is about to be
// re-signed). The new key is stored before any card names it. It must not
// run inside a store transaction.
func (m *Messenger) maybeRotateMailbox(ctx context.Context) error {
	m.mbMu.Lock()
	ks := slices.Clone(m.mbKeys)
	m.mbMu.Unlock()
	now := m.now()
	if len(ks) == 0 || now.Sub(ks[len(ks)-1].since) < m.cfg.MailboxRotateAfter {
		return nil
	}
	k, err := mailbox.NewKey()
	if err != nil {
		return err
	}
	ks[len(ks)-1].until = now
	ks = append(ks, mailboxKey{key: k, since: now})
	if len(ks) > maxMailboxKeys {
		ks = ks[len(ks)-maxMailboxKeys:]
	}
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		return tx.PutBlob(blobMailboxKeys, marshalMailboxKeys(ks))
	})
	if err != nil {
		return err
	}
	m.mbMu.Lock()
	m.mbKeys, m.mbKey = ks, k
	m.mbMu.Unlock()
	m.log.Info("mailboxRotated", "mailbox", mailbox.KeyID(k).Short(), "keys", len(ks))
	return nil
}

// mailboxKeys returns our mailbox keys, the current one first.
func (m *Messenger) mailboxKeys() []ed25519.PrivateKey {
	m.mbMu.Lock()
	defer m.mbMu.Unlock()
	out := make([]ed25519.PrivateKey, 0, len(m.mbKeys))
	for i := len(m.mbKeys) - 1; i >= 0; i-- {
		out = append(out, m.mbKeys[i].key)
	}
	return out
}

// cardMailboxes lists our mailbox hosts for our card.
func (m *Messenger) cardMailboxes() []identity.MailboxHost {
	m.mbMu.Lock()
	key := m.mbKey
	m.mbMu.Unlock()
	if key == nil {
		return nil
	}
	id := mailbox.KeyID(key)
	var out []identity.MailboxHost
	for _, h := range m.mailboxHosts() {
		out = append(out, identity.MailboxHost{PeerID: h.PeerID, Addrs: hostAddrs(h), ID: id[:]})
	}
	return out
}

// hostAddrs are a host's addresses without a trailing /p2p/<its id>; a
// circuit address (…/p2p/<relay>/p2p-circuit) keeps its relay.
func hostAddrs(h MailboxHost) []string {
	out := make([]string, 0, len(h.Addrs))
	for _, a := range h.Addrs {
		out = append(out, strings.TrimSuffix(a, "/p2p/"+h.PeerID))
	}
	return out
}

// depositToMailboxes leaves a contact's queued envelopes with its mailbox
// hosts. Envelopes at least one host accepted are marked sent (acks,
// which need no ack themselves, leave the outbox). It reports whether any
// host accepted anything.
func (m *Messenger) depositToMailboxes(ctx context.Context, c *store.Contact, queue []store.OutboxItem) bool {
	card, err := m.primaryCard(ctx, c)
	if err != nil || len(card.Mailboxes) == 0 || m.tr == nil {
		return false
	}
	// Each envelope is deposited once per run of the node and card of the
	// contact (hosts dedupe anyway, but a long queue would be sent again
	// on every retry); a newer card (other hosts or mailbox id) gets it
	// again.
	m.mbMu.Lock()
	if m.deposited == nil || len(m.deposited) > maxDepositedMemo {
		m.deposited = map[string]bool{}
	}
	var items []store.OutboxItem
	for _, it := range queue {
		if !m.deposited[depositKey(c.ID, card.Serial, it.MessageID)] {
			items = append(items, it)
		}
	}
	m.mbMu.Unlock()
	if len(items) == 0 {
		return false
	}
	// One box per envelope, the same for every host: the hosts see
	// unlinkable ciphertext, and our contact's copies dedupe by hash.
	envs := make([][]byte, len(items))
	for i, it := range items {
		if envs[i], err = m.sealFor(card.Identity, it.Payload); err != nil {
			m.log.Error("sealFailed", "err", err)
			return false
		}
	}
	accepted := make([]bool, len(items))
	any := false
	for i, h := range card.Mailboxes {
		if i == maxDepositHosts {
			break
		}
		var id mailbox.ID
		copy(id[:], h.ID)
		dctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
		n, err := mailbox.DepositBatch(dctx, m.opener(MailboxHost{PeerID: h.PeerID, Addrs: h.Addrs}), h.PeerID, id, envs)
		cancel()
		for j := 0; j < n; j++ {
			accepted[j], any = true, true
		}
		if err != nil {
			m.log.Info("depositRefused", "host", shortPeer(h.PeerID), "err", err)
		}
	}
	if !any {
		return false
	}
	m.mbMu.Lock()
	for i, it := range items {
		if accepted[i] {
			m.deposited[depositKey(c.ID, card.Serial, it.MessageID)] = true
		}
	}
	m.mbMu.Unlock()
	var rx *batch
	err = m.st.Update(ctx, func(tx *store.Tx) error {
		rx = newBatch()
		for i, it := range items {
			if !accepted[i] {
				continue
			}
			if isAckItem(it) {
				if err := tx.DeleteOutbox(c.ID, it.MessageID); err != nil {
					return err
				}
				continue
			}
			if err := m.advance(tx, rx, c.ID, it.MessageID, StateSent); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, e := range rx.events {
			m.emit(e)
		}
	}
	return true
}

// sealFor puts an envelope in a sealed box for a contact's identity
// (sealed sender: what the holder keeps names neither of us).
func (m *Messenger) sealFor(to keys.PublicIdentity, env []byte) ([]byte, error) {
	return keys.Seal(to, wire.Marshal(&wirepb.SealedContent{
		Version: wire.Version, Sender: sealedHint(m.id.Public().SigningKey()), Envelope: env,
	}))
}

// openedBox is the result of unsealing one fetched item.
type openedBox struct {
	seen bool // processed already (a copy from another host): not opened
	env  *wirepb.Envelope
	from []byte
	err  error
}

// unsealAll opens a page of fetched boxes in parallel.
func (m *Messenger) unsealAll(items []mailbox.Item) []openedBox {
	out := make([]openedBox, len(items))
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(runtime.GOMAXPROCS(0), len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(items); i = int(next.Add(1) - 1) {
				if m.seenEnvelope(items[i].Hash) {
					out[i].seen = true
					continue
				}
				out[i].env, out[i].from, out[i].err = m.unseal(items[i].Envelope)
			}
		}()
	}
	wg.Wait()
	return out
}

// sealedHint is what a sealed box says of its sender: the first
// wire.SealedSenderSize bytes of the account key, enough to pick the
// session to try first (a wrong or colliding hint costs trial decryptions,
// nothing more: the sender is authenticated by the ratchet).
func sealedHint(accountKey []byte) []byte { return accountKey[:wire.SealedSenderSize] }

// unseal opens a sealed box addressed to us and returns the envelope and
// the sender hint.
func (m *Messenger) unseal(box []byte) (*wirepb.Envelope, []byte, error) {
	content, err := m.id.Unseal(box)
	if err != nil {
		return nil, nil, err
	}
	sc, env, err := wire.ParseSealedContent(content)
	if err != nil {
		return nil, nil, err
	}
	return env, sc.Sender, nil
}

// fetchLoop checks our mailboxes at start, when kicked (a host connected)
// and every FetchInterval, backing off while they are empty (fetchpace.go).
func (m *Messenger) fetchLoop(ctx context.Context) {
	pace := newFetchPace(m.cfg.FetchInterval)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		// The same sealed box sits at each of our hosts: what one host
		// gave us is deleted at the next ones before listing, not fetched
		// again.
		var round []mailbox.Hash
		for _, h := range m.mailboxHosts() {
			round = m.fetchFrom(ctx, h, round)
		}
		t.Reset(pace.next(len(round)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.fetchKick:
			pace.reset()
		}
	}
}

// fetchFrom takes our mail from one host, under each of our mailbox ids
// (the current one first), after deleting there the boxes already taken
// this round (done); it returns done with what it took added.
func (m *Messenger) fetchFrom(ctx context.Context, h MailboxHost, done []mailbox.Hash) []mailbox.Hash {
	total := 0
	var firstErr error
	for _, key := range m.mailboxKeys() {
		var n int
		var err error
		n, done, err = m.fetchWith(ctx, h, key, done)
		total += n
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if errors.Is(err, errHostUnreachable) {
			break
		}
	}
	m.noteFetch(h.PeerID, total, firstErr)
	return done
}

// maxRoundHashes bounds what one fetch round remembers to delete at the
// next hosts.
const maxRoundHashes = 100_000

// errHostUnreachable is returned by fetchWith when no session opened.
var errHostUnreachable = errors.New("mailbox host unreachable")

// fetchWith takes the mail of one of our mailboxes from one host:
// process, then delete what was processed (stored, or refused for good);
// what failed for a passing reason stays for the next fetch.
func (m *Messenger) fetchWith(ctx context.Context, h MailboxHost, key ed25519.PrivateKey, round []mailbox.Hash) (fetched int, _ []mailbox.Hash, err error) {
	sctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	defer cancel()
	// A session per mailbox key, each over its own throwaway identity: the
	// host cannot tell that two of our ids belong together.
	s, err := mailbox.OpenSession(sctx, m.opener(h), h.PeerID, key)
	if err != nil {
		m.log.Debug("mailboxUnreachable", "host", shortPeer(h.PeerID), "err", err)
		return 0, round, fmt.Errorf("%w: %w", errHostUnreachable, err)
	}
	defer s.Close()
	if len(round) > 0 {
		if _, err := s.Delete(sctx, round); err != nil {
			return 0, round, err
		}
	}
	for {
		var items []mailbox.Item
		var more bool
		items, more, err = s.Next(sctx, fetchPage)
		if err != nil || len(items) == 0 {
			return fetched, round, err
		}
		fetched += len(items)
		done := m.takeItems(ctx, h, items)
		if len(done) > 0 {
			if _, err = s.Delete(sctx, done); err != nil {
				return fetched, round, err
			}
			if len(round) < maxRoundHashes {
				round = append(round, done...)
			}
		}
		if !more {
			return fetched, round, nil
		}
	}
}

// takeItems opens and processes a page of fetched boxes and returns the
// hashes to delete at the host: those processed (stored, or refused for
// good); what failed for a passing reason stays for the next fetch.
func (m *Messenger) takeItems(ctx context.Context, h MailboxHost, items []mailbox.Item) []mailbox.Hash {
	var done []mailbox.Hash
	var envs []*wirepb.Envelope
	var hints [][]byte
	var hashes []mailbox.Hash
	// Opening a box costs an X25519 operation: open the page's boxes
	// on every core, then process them in order.
	opened := m.unsealAll(items)
	for i, it := range items {
		switch o := opened[i]; {
		case o.seen:
			done = append(done, it.Hash) // the same envelope, from another host
		case o.err != nil:
			done = append(done, it.Hash) // garbage, or not for us: nothing to keep
		default:
			envs = append(envs, o.env)
			hints = append(hints, o.from)
			hashes = append(hashes, it.Hash)
		}
	}
	if len(envs) == 0 {
		return done
	}
	resps, err := m.receiveSealed(ctx, "", envs, hints)
	if err != nil {
		m.log.Info("mailboxEnvelopesNotAccepted", "host", shortPeer(h.PeerID), "err", err)
	}
	stored := false
	for i, r := range resps {
		if r.Status != wirepb.Response_STATUS_RETRY {
			done = append(done, hashes[i])
			m.markEnvelope(hashes[i])
		}
		stored = stored || r.Status == wirepb.Response_STATUS_OK
	}
	if stored {
		m.wake() // acks to deliver
	}
	return done
}

// trialDecrypt finds the sender of a sealed envelope (no initiation, no
// stream peer): the contact its sender hint names, whose sessions are
// tried. A hint that names no contact is refused without any decryption:
// junk sealed to our public identity key costs O(1), never a trial against
// every contact (issue 14). A match decrypts.
func (m *Messenger) trialDecrypt(tx *store.Tx, rx *batch, env *wirepb.Envelope) (*store.Contact, *wirepb.SessionRecord, []byte, error) {
	cs, err := rx.sealedCandidates(tx, rx.sealedFrom)
	if err != nil {
		return nil, nil, nil, err
	}
	var lastErr error = ErrUnknownSender
	for _, c := range cs {
		rec, err := rx.record(tx, c.ID)
		if err != nil {
			return nil, nil, nil, err
		}
		if len(rec.Sessions) == 0 {
			continue
		}
		m.sealedTrials.Add(1)
		plain, _, err := m.decrypt(rec, nil, nil, env)
		if err != nil {
			lastErr = err
			continue
		}
		return c, rec, plain, nil
	}
	// Another device of a contact (fanout.go).
	for _, c := range cs {
		rec, plain, err := m.trialDevices(tx, rx, c, env)
		if err != nil && !isPermanent(err) {
			return nil, nil, nil, err
		} else if err == nil {
			return c, rec, plain, nil
		}
	}
	return nil, nil, nil, permanent(lastErr)
}

// MailboxStatus is what we know of one of our mailbox hosts.
type MailboxStatus struct {
	PeerID    string    `json:"peerId"`
	Addrs     []string  `json:"addrs"`
	MailboxID string    `json:"mailboxId"`
	LastCheck time.Time `json:"lastCheck"` // zero: not checked yet
	LastOK    time.Time `json:"lastOk"`    // zero: never reached
	LastError string    `json:"lastError,omitempty"`
	Fetched   int       `json:"fetched"` // envelopes taken since start
}

// Mailboxes reports our mailbox hosts and how fetching from them went.
func (m *Messenger) Mailboxes() []MailboxStatus {
	hosts := m.mailboxHosts()
	m.mbMu.Lock()
	defer m.mbMu.Unlock()
	out := make([]MailboxStatus, 0, len(hosts))
	var id string
	if m.mbKey != nil {
		id = mailbox.KeyID(m.mbKey).String() // the current one
	}
	for _, h := range hosts {
		st := m.mbStatus[h.PeerID]
		st.PeerID, st.Addrs, st.MailboxID = h.PeerID, h.Addrs, id
		out = append(out, st)
	}
	return out
}

func (m *Messenger) noteFetch(peerID string, n int, err error) {
	m.mbMu.Lock()
	defer m.mbMu.Unlock()
	if m.mbStatus == nil {
		m.mbStatus = map[string]MailboxStatus{}
	}
	st := m.mbStatus[peerID]
	st.LastCheck = m.now()
	st.Fetched += n
	if err != nil {
		st.LastError = err.Error()
	} else {
		st.LastOK, st.LastError = st.LastCheck, ""
	}
	m.mbStatus[peerID] = st
}

// seenEnvelope reports whether an identical envelope (same hash) was
// already processed: senders leave a copy at each of our hosts.
func (m *Messenger) seenEnvelope(h mailbox.Hash) bool {
	m.mbMu.Lock()
	defer m.mbMu.Unlock()
	return m.seen[h]
}

func (m *Messenger) markEnvelope(h mailbox.Hash) {
	m.mbMu.Lock()
	defer m.mbMu.Unlock()
	if m.seen == nil || len(m.seen) > maxDepositedMemo {
		m.seen = map[mailbox.Hash]bool{}
	}
	m.seen[h] = true
}

// kickFetch asks the fetch loop to check the mailboxes now.
func (m *Messenger) kickFetch() {
	select {
	case m.fetchKick <- struct{}{}:
	default:
	}
}

// mailboxHosts returns our mailbox hosts.
func (m *Messenger) mailboxHosts() []MailboxHost {
	m.hostsMu.Lock()
	defer m.hostsMu.Unlock()
	return m.cfg.MailboxHosts
}

// SetMailboxHosts replaces our mailbox hosts (e.g. with hosts found in the
// DHT). Our card is re-signed to list them, and contacts get it with our
// next message or ack; mail is fetched from the new hosts at once.
func (m *Messenger) SetMailboxHosts(ctx context.Context, hosts []MailboxHost) error {
	m.mbMu.Lock()
	haveKey := m.mbKey != nil
	m.mbMu.Unlock()
	if !haveKey && len(hosts) > 0 {
		if err := m.loadMailboxKey(ctx); err != nil {
			return err
		}
	}
	m.hostsMu.Lock()
	m.cfg.MailboxHosts = slices.Clone(hosts)
	m.hostsMu.Unlock()
	m.cardMu.Lock()
	m.ownCard = nil // the next card lists the new hosts
	m.cardMu.Unlock()
	m.kickFetch()
	return nil
}

// isMailboxHost reports whether peerID is one of our mailbox hosts.
func (m *Messenger) isMailboxHost(peerID string) bool {
	for _, h := range m.mailboxHosts() {
		if h.PeerID == peerID {
			return true
		}
	}
	return false
}
