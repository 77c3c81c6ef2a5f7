package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Bounds of one sync.
const (
	// MaxPushItems bounds the items an initiator pushes in one sync.
	MaxPushItems = 2000
	// MaxOwnedItems bounds the items a responder adds for the initiator's
	// mailboxes in one sync.
	MaxOwnedItems = 1000
	// MaxMessageSize bounds a protocol message (a diff or want of
	// MaxDiffIDs ids is the largest).
	MaxMessageSize = MaxDiffIDs*IDSize + 4096
)

// countingStream counts the bytes a sync moves.
type countingStream struct {
	p2p.Stream
	m *Mesh
}

func (c countingStream) Read(b []byte) (int, error) {
	n, err := c.Stream.Read(b)
	c.m.bytesRecv.Add(int64(n))
	return n, err
}

func (c countingStream) Write(b []byte) (int, error) {
	n, err := c.Stream.Write(b)
	c.m.bytesSent.Add(int64(n))
	return n, err
}

// syncOutcome says what syncWith did.
type syncOutcome int

const (
	synced    syncOutcome = iota // a sync was attempted
	tooRecent                    // skipped: synced less than MinSyncInterval ago
	skipped                      // skipped: running, or not a mesh peer
)

// syncWith runs one sync as initiator with a connected neighbour, unless
// one is running, it was synced with less than MinSyncInterval ago (force
// ignores that: it just came into range), or it does not speak the
// protocol. When the sync brought mail for our mailboxes, a second one
// follows at once (followUp).
func (m *Mesh) syncWith(ctx context.Context, peer string, force bool) syncOutcome {
	out, again := m.syncOnce(ctx, peer, force)
	if again {
		m.followUp(ctx, peer)
	}
	return out
}

// followUp syncs again with a neighbour that just brought mail for our
// mailboxes: our receipts, and the acks our owner made while processing it
// (DeliverFunc offers them before it returns), go back to that same
// carrier during the same meeting, not at a later round when it may be
// gone.
func (m *Mesh) followUp(ctx context.Context, peer string) {
	if ctx.Err() == nil && m.neighbour(peer) {
		m.syncOnce(ctx, peer, true)
	}
}

// syncOnce is one sync as initiator (see syncWith); again reports that it
// brought mail for our mailboxes.
func (m *Mesh) syncOnce(ctx context.Context, peer string, force bool) (_ syncOutcome, again bool) {
	now := m.now()
	m.mu.Lock()
	if force {
		delete(m.notMesh, peer)
	}
	if m.inflight[peer] > 0 {
		m.mu.Unlock()
		return tooRecent, false
	}
	if t, ok := m.notMesh[peer]; ok && now.Sub(t) < notMeshFor {
		m.mu.Unlock()
		return skipped, false
	}
	if !force && now.Sub(m.lastSync[peer]) < m.cfg.MinSyncInterval {
		m.mu.Unlock()
		return tooRecent, false
	}
	// Nothing changed here since a complete sync with this peer: what it
	// learnt since, it brings itself (its set changed, so it syncs). A
	// full sync still runs every idleResync intervals, in case.
	gen := m.st.generation()
	if last, ok := m.syncedGen[peer]; !force && ok && last == gen && now.Sub(m.lastSync[peer]) < idleResync*m.cfg.SyncInterval {
		m.mu.Unlock()
		return skipped, false
	}
	m.inflight[peer]++
	m.initiating[peer] = true
	m.lastSync[peer] = now
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.initiating, peer)
		m.mu.Unlock()
		m.done(peer)
	}()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	defer cancel()
	s, err := m.tr.OpenStream(ctx, peer, Protocol)
	if err != nil {
		if errors.Is(err, p2p.ErrProtocolNotSupported) {
			m.mu.Lock()
			m.notMesh[peer] = now
			m.mu.Unlock()
		}
		m.log.Debug("meshSyncNotOpened", "peer", short(peer), "err", err)
		return synced, false
	}
	complete, delivered, err := m.initiate(ctx, countingStream{s, m}, peer)
	m.mu.Lock()
	if err == nil && complete {
		m.syncedGen[peer] = gen
	} else {
		delete(m.syncedGen, peer)
	}
	m.mu.Unlock()
	if err != nil {
		_ = s.Reset()
		if errors.Is(err, p2p.ErrProtocolNotSupported) {
			m.mu.Lock()
			m.notMesh[peer] = now
			m.mu.Unlock()
		}
		m.log.Debug("meshSyncFailed", "peer", short(peer), "err", err)
		return synced, false
	}
	_ = s.Close()
	return synced, delivered > 0
}

// done ends a sync with peer, either side.
func (m *Mesh) done(peer string) {
	m.mu.Lock()
	if m.inflight[peer]--; m.inflight[peer] <= 0 {
		delete(m.inflight, peer)
	}
	m.mu.Unlock()
}

func (m *Mesh) notePeer(peer string) {
	m.mu.Lock()
	m.meshPeer[peer] = true
	m.mu.Unlock()
}

// initiate is the initiator's side of a sync (see wirepb/mesh.proto).
// It reports whether the sync was complete (nothing left out for a bound)
// and how many envelopes for our mailboxes it delivered.
func (m *Mesh) initiate(ctx context.Context, s p2p.Stream, peer string) (complete bool, delivered int, err error) {
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(deadline(ctx))
	w := bufio.NewWriterSize(s, 64<<10)
	r := bufio.NewReaderSize(s, 64<<10)

	ids := m.knownIDs()
	buckets := bucketCount(len(ids))
	sum := summarize(ids, buckets)
	hello := &wirepb.MeshHello{Version: Version, Buckets: uint32(buckets), Fingerprints: sum.fps, Counts: sum.counts, Owners: m.proofs(peer)}
	if err := writeMsg(w, hello); err != nil {
		return false, 0, err
	}
	if err := w.Flush(); err != nil {
		return false, 0, err
	}
	var diff wirepb.MeshDiff
	if err := readMsg(r, &diff); err != nil {
		return false, 0, err
	}
	m.notePeer(peer)
	if err := checkVersion(diff.Version); err != nil {
		return false, 0, err
	}
	theirs, ok := unpackIDs(diff.Ids)
	if !ok || len(theirs) > MaxDiffIDs || len(diff.Buckets) > buckets || len(diff.Owners) > MaxOwners {
		return false, 0, ErrMalformed
	}
	owned, err := m.verifyProofs(peer, diff.Owners)
	if err != nil {
		return false, 0, err
	}
	inDiff := make(map[int]bool, len(diff.Buckets))
	for _, b := range diff.Buckets {
		if int(b) >= buckets || inDiff[int(b)] {
			return false, 0, ErrMalformed
		}
		inDiff[int(b)] = true
	}
	theirSet := make(map[mailbox.Hash]bool, len(theirs))
	for _, id := range theirs {
		if !inDiff[bucketOf(id, buckets)] {
			return false, 0, ErrMalformed
		}
		theirSet[id] = true
	}
	// What we want: what we do not know, and no other sync of ours is
	// fetching or may be sent (in a bucket another sync is taking: see
	// bucketClaim); those come at the next sync.
	var want []mailbox.Hash
	deferred := false
	m.mu.Lock()
	for _, id := range theirs {
		if len(want) == MaxWantIDs {
			break
		}
		if m.st.isKnown(id) || m.fetching[id] {
			continue
		}
		if m.bucketTakenLocked(id) {
			deferred = true
			continue
		}
		m.fetching[id] = true
		want = append(want, id)
	}
	m.mu.Unlock()
	defer m.releaseFetch(want)
	var push []*item
	budget := m.cfg.MaxSyncBytes
	now := m.now()
	cut := false // push limited by a bound
	for _, id := range ids {
		if len(push) == MaxPushItems || budget <= 0 {
			cut = true
			break
		}
		if !inDiff[bucketOf(id, buckets)] || theirSet[id] {
			continue
		}
		if it := m.st.get(id); it != nil && it.hops > 0 && now.Before(it.expires) {
			push = append(push, it)
			budget -= it.size()
		}
	}
	pushed := make(map[mailbox.Hash]bool, len(push))
	for _, it := range push {
		pushed[it.id] = true
	}
	// And what we hold for the responder's mailboxes, whatever its hops,
	// if it lacks it: in a bucket it listed and not among its ids (the
	// buckets a diff cut short left out come at the next sync).
	lacks := func(id mailbox.Hash) bool { return inDiff[bucketOf(id, buckets)] && !theirSet[id] }
	push = m.addOwned(push, pushed, owned, lacks, budget, MaxPushItems)
	if err := writeMsg(w, &wirepb.MeshWant{Version: Version, Ids: packIDs(want), Items: uint32(len(push))}); err != nil {
		return false, 0, err
	}
	for _, it := range push {
		if err := m.writeItem(w, it, sendHops(it, owned)); err != nil {
			return false, 0, err
		}
	}
	if err := w.Flush(); err != nil {
		return false, 0, err
	}
	if err := s.CloseWrite(); err != nil {
		return false, 0, err
	}
	// What comes back: what we wanted and what is carried for us.
	rx := newReceiver(m, peer)
	for n := 0; n < len(want)+MaxOwnedItems; n++ {
		err := rx.readItem(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, 0, err
		}
	}
	rx.finish(ctx)
	m.syncs.Add(1)
	complete = !diff.Truncated && len(want) < MaxWantIDs && !cut && !deferred
	if !complete {
		m.poke()
	}
	return complete, rx.delivered, nil
}

// serve is the responder's side of a sync.
func (m *Mesh) serve(st p2p.Stream) {
	s := countingStream{st, m}
	peer := st.RemotePeer()
	if !m.neighbour(peer) || !m.enter() {
		_ = st.Reset()
		return
	}
	defer m.wg.Done()
	// A sync runs both ways: while we answer, we start none with this
	// peer; when both start one at once, the smaller id's goes on.
	m.mu.Lock()
	if m.initiating[peer] && m.tr.PeerID() < peer {
		m.mu.Unlock()
		_ = st.Reset()
		return
	}
	m.inflight[peer]++
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.StreamTimeout)
	delivered, err := m.respond(ctx, s, peer)
	cancel()
	if err != nil {
		_ = st.Reset()
	} else {
		_ = st.Close()
	}
	m.done(peer)
	if err != nil {
		m.log.Debug("meshServeFailed", "peer", short(peer), "err", err)
		return
	}
	if delivered > 0 {
		m.followUp(m.ctx, peer)
	}
}

// respond is the responder's side of a sync; it returns how many
// envelopes for our mailboxes it delivered.
func (m *Mesh) respond(ctx context.Context, s p2p.Stream, peer string) (delivered int, err error) {
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(deadline(ctx))
	w := bufio.NewWriterSize(s, 64<<10)
	r := bufio.NewReaderSize(s, 64<<10)

	var hello wirepb.MeshHello
	if err := readMsg(r, &hello); err != nil {
		return 0, err
	}
	if err := checkVersion(hello.Version); err != nil {
		return 0, err
	}
	buckets := int(hello.Buckets)
	if !validBuckets(hello.Buckets) || len(hello.Fingerprints) != buckets*FingerprintSize ||
		len(hello.Counts) != buckets || len(hello.Owners) > MaxOwners {
		return 0, ErrMalformed
	}
	m.notePeer(peer)
	now := m.now()
	owned, err := m.verifyProofs(peer, hello.Owners)
	if err != nil {
		return 0, err
	}
	// Our diff: the buckets that differ, but those another sync of ours
	// is taking items in (it would be sent the same new items: they come
	// at the next sync), claimed until the initiator's items are taken.
	// Our set and the claim are taken at once, under m.mu, so that no id
	// a sync of ours starts fetching meanwhile is left out of both.
	diff := &wirepb.MeshDiff{Version: Version, Owners: m.proofs(peer)}
	claim := &bucketClaim{n: buckets, buckets: map[int]bool{}}
	var listed []mailbox.Hash
	m.mu.Lock()
	ids := m.knownIDsLocked()
	mine := summarize(ids, buckets)
	diffBuckets := differing(summary{buckets: buckets, fps: hello.Fingerprints, counts: hello.Counts}, mine)
	byBucket := map[int][]mailbox.Hash{}
	for _, id := range ids {
		b := bucketOf(id, buckets)
		byBucket[b] = append(byBucket[b], id)
	}
	for _, b := range diffBuckets {
		if m.bucketClaimedLocked(buckets, b) {
			diff.Truncated = true
			continue
		}
		if len(listed)+len(byBucket[b]) > MaxDiffIDs {
			diff.Truncated = true
			break
		}
		claim.buckets[b] = true
		diff.Buckets = append(diff.Buckets, uint32(b))
		listed = append(listed, byBucket[b]...)
	}
	m.claims[claim] = true
	m.mu.Unlock()
	released := false
	release := func() {
		if !released {
			released = true
			m.mu.Lock()
			delete(m.claims, claim)
			m.mu.Unlock()
		}
	}
	defer release()
	diff.Ids = packIDs(listed)
	if err := writeMsg(w, diff); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}

	var want wirepb.MeshWant
	if err := readMsg(r, &want); err != nil {
		return 0, err
	}
	if err := checkVersion(want.Version); err != nil {
		return 0, err
	}
	wanted, ok := unpackIDs(want.Ids)
	if !ok || len(wanted) > MaxWantIDs || want.Items > MaxPushItems {
		return 0, ErrMalformed
	}
	rx := newReceiver(m, peer)
	for range want.Items {
		if err := rx.readItem(r); err != nil {
			return 0, err
		}
	}
	release()
	rx.finish(ctx)

	// Answer: what was wanted (and may travel on; whatever its hops if it
	// is for the initiator's proven mailboxes). What the initiator lacks
	// for its mailboxes in the buckets we listed it has just asked for; in
	// a bucket that matched it holds it already; the buckets a diff cut
	// short left out come at the next sync.
	budget := m.cfg.MaxSyncBytes
	sent := map[mailbox.Hash]bool{}
	for _, id := range wanted {
		if budget <= 0 {
			break
		}
		it := m.st.get(id)
		if it == nil || it.hops == 0 && !slices.Contains(owned, it.mailbox) || !now.Before(it.expires) || sent[id] {
			continue
		}
		if err := m.writeItem(w, it, sendHops(it, owned)); err != nil {
			return 0, err
		}
		sent[id] = true
		budget -= it.size()
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	m.syncs.Add(1)
	return rx.delivered, nil
}

// knownIDs is our id set as a neighbour should see it: what we know, and
// what another sync is fetching for us right now (so that it is not pushed
// to us twice).
func (m *Mesh) knownIDs() []mailbox.Hash {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.knownIDsLocked()
}

// knownIDsLocked is knownIDs with m.mu held; envelopes for our mailboxes
// being delivered count too.
func (m *Mesh) knownIDsLocked() []mailbox.Hash {
	ids := m.st.ids()
	for _, set := range []map[mailbox.Hash]bool{m.fetching, m.delivering} {
		for id := range set {
			if !m.st.isKnown(id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// bucketClaim is the buckets (of a summary of n buckets) a sync we answer
// listed in its diff: until we have taken what the initiator pushes, it
// may send us any new id in them. Another sync must neither list an
// overlapping bucket nor want an id in one: two neighbours syncing with us
// at once would otherwise both send us the same new items.
type bucketClaim struct {
	n       int
	buckets map[int]bool
}

// bucketClaimedLocked reports whether bucket b of a summary of n buckets
// overlaps a claim (buckets are the low bits of an id: b of n and c of
// n' overlap when they agree on the low bits of the smaller count).
func (m *Mesh) bucketClaimedLocked(n, b int) bool {
	for c := range m.claims {
		if c.n <= n {
			if c.buckets[b&(c.n-1)] {
				return true
			}
			continue
		}
		for cb := range c.buckets {
			if cb&(n-1) == b {
				return true
			}
		}
	}
	return false
}

// bucketTakenLocked reports whether id is in a claimed bucket.
func (m *Mesh) bucketTakenLocked(id mailbox.Hash) bool {
	for c := range m.claims {
		if c.buckets[bucketOf(id, c.n)] {
			return true
		}
	}
	return false
}

func (m *Mesh) releaseFetch(ids []mailbox.Hash) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.fetching, id)
	}
}

// proofs proves our mailboxes to peer.
func (m *Mesh) proofs(peer string) []*wirepb.MeshOwnerProof {
	m.mu.Lock()
	owners := slices.Clone(m.owners)
	m.mu.Unlock()
	unix := m.now().Unix()
	var out []*wirepb.MeshOwnerProof
	for i := len(owners) - 1; i >= 0 && len(out) < MaxOwners; i-- {
		o := owners[i]
		pub, sig := signOwner(o.key, peer, m.tr.PeerID(), unix)
		out = append(out, &wirepb.MeshOwnerProof{PublicKey: pub, UnixTime: unix, Signature: sig})
	}
	return out
}

// verifyProofs returns the mailboxes peer proved it owns (proofs that do
// not verify are ignored: a clock too far off, typically).
func (m *Mesh) verifyProofs(peer string, ps []*wirepb.MeshOwnerProof) ([]mailbox.ID, error) {
	if len(ps) > MaxOwners {
		return nil, ErrMalformed
	}
	now := m.now()
	var owned []mailbox.ID
	for _, p := range ps {
		if p == nil {
			return nil, ErrMalformed
		}
		if id, ok := verifyOwner(m.tr.PeerID(), peer, p.PublicKey, p.UnixTime, p.Signature, now); ok {
			owned = append(owned, id)
		}
	}
	return owned, nil
}

// addOwned appends to list the envelopes we hold for the owned mailboxes
// and have not listed yet, within budget bytes and max items in all.
func (m *Mesh) addOwned(list []*item, listed map[mailbox.Hash]bool, owned []mailbox.ID, lacks func(mailbox.Hash) bool, budget, max int) []*item {
	if len(owned) == 0 {
		return list
	}
	for _, it := range m.st.selectItems(func(it *item) bool { return it.env != nil && slices.Contains(owned, it.mailbox) }) {
		if len(list) >= max || budget <= 0 {
			break
		}
		if !listed[it.id] && lacks(it.id) {
			list = append(list, it)
			listed[it.id] = true
			budget -= it.size()
		}
	}
	return list
}

// sendHops is the hops an item has at the receiver: none when it reaches
// its owner; else, from an item we may pass on (hops h > 0), h again, or
// with probability 1/h none (the receiver keeps it until its owner comes
// by). A path through carriers is thus 1 + a geometric number of hops
// long, h on average (exactly one carrier for h = 1), and the hops a
// carrier sees say nothing of how far an item has come: an author's own
// items (sent with Config.Hops) and forwarded ones look the same.
//
// A receipt (signed by the mailbox key: it hides no author) loses one hop
// at each carrier, as it must reach every carrier of its envelope.
func sendHops(it *item, owned []mailbox.ID) uint32 {
	switch {
	case it.hops == 0 || slices.Contains(owned, it.mailbox):
		return 0
	case it.env == nil:
		return it.hops - 1
	case rand.IntN(int(it.hops)) == 0:
		return 0
	}
	return it.hops
}

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(DefaultStreamTimeout)
	}
	return d
}

func writeMsg(w io.Writer, msg proto.Message) error {
	return wire.WriteFrame(w, wire.Marshal(msg))
}

// readMsg reads one protocol message frame.
func readMsg(r io.Reader, msg proto.Message) error {
	b, err := wire.ReadFrame(r)
	if errors.Is(err, wire.ErrTooLarge) {
		return fmt.Errorf("%w: oversized frame", ErrMalformed)
	}
	if err != nil {
		return err
	}
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%w: %d-byte message", ErrMalformed, len(b))
	}
	if err := proto.Unmarshal(b, msg); err != nil {
		return ErrMalformed
	}
	return nil
}

func checkVersion(v uint32) error {
	if v == 0 {
		return fmt.Errorf("%w: no version", ErrMalformed)
	}
	if v != Version {
		return fmt.Errorf("%w: %d", ErrVersion, v)
	}
	return nil
}

func short(p string) string {
	if len(p) > 12 {
		return p[len(p)-8:]
	}
	return p
}
