package mesh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// Protocol is the stream protocol id of mesh sync.
const Protocol = "/samizdat/mesh/1"

// Version is the only mesh protocol version this code speaks.
const Version = 1

// Defaults for the zero values of Config.
const (
	DefaultHops            = 7
	DefaultTTL             = 7 * 24 * time.Hour
	DefaultMaxItems        = 5000
	DefaultMaxBytes        = 64 << 20
	DefaultMaxReceipts     = 20000
	DefaultSyncInterval    = 30 * time.Second
	DefaultMinSyncInterval = 2 * time.Second
	DefaultMaxSyncPeers    = 8
	DefaultMaxSyncBytes    = 16 << 20
	DefaultStreamTimeout   = time.Minute
	// MaxHops bounds the hops an item may claim (and Config.Hops).
	MaxHops = 16
	// MaxTTL bounds Config.TTL (a carrier keeps an item no longer than its
	// own TTL, whatever the item claims).
	MaxTTL = 30 * 24 * time.Hour
	// MaxHosts bounds the mailbox hosts named by one item.
	MaxHosts = 8
	// PeerShareDivisor: one neighbour may have us hold at most
	// MaxItems/PeerShareDivisor of its envelopes and
	// MaxBytes/PeerShareDivisor of their bytes.
	PeerShareDivisor = 4
	// MaxOwners bounds the ownership proofs in one hello.
	MaxOwners = 8
	// idleResync: with nothing new on our side, a neighbour is synced with
	// again after this many SyncIntervals only.
	idleResync = 10
	// notMeshFor is how long a peer that does not speak the protocol is
	// left alone.
	notMeshFor = 10 * time.Minute
)

// Errors of the package.
var (
	// ErrFull is returned by Offer when the carrier store has no room for
	// our own item (it is full of our own outgoing mail).
	ErrFull = errors.New("mesh: carrier storage is full")
	// ErrTooLarge is returned by Offer for an envelope over
	// wire.MaxEnvelopeSize or Config.MaxBytes.
	ErrTooLarge = errors.New("mesh: envelope too large")
	// ErrMalformed is returned when a peer breaks the protocol.
	ErrMalformed = errors.New("mesh: malformed message")
	// ErrVersion is returned when a peer speaks another protocol version.
	ErrVersion = errors.New("mesh: unsupported protocol version")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("mesh: closed")
)

// Transport is what the mesh needs from a link layer. *p2p.Node is one
// (libp2p over a LAN, peers found by mDNS); a Bluetooth LE link on a phone
// can be another (docs/MESH.md says how): it must give authenticated peer
// ids, reliable ordered byte streams per protocol, and tell when a
// neighbour comes into range.
type Transport interface {
	// PeerID is this node's id on the transport.
	PeerID() string
	// Handle and Unhandle register a handler for streams a peer opens.
	Handle(protocol string, h func(s p2p.Stream))
	Unhandle(protocol string)
	// OpenStream opens a stream to a neighbour.
	OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error)
	// OnConnected calls f (in a goroutine of its own) when a neighbour
	// comes into range.
	OnConnected(f func(peerID string))
	// ConnectedPeers lists the neighbours in range now.
	ConnectedPeers() []string
}

var _ Transport = (*p2p.Node)(nil)

// Neighbourhood is implemented by transports that reach beyond the
// neighbourhood (libp2p also connects across the internet): the mesh syncs
// only with peers for which IsLANPeer is true. Carrying over the internet
// is what mailbox hosts are for. A transport without it (Bluetooth LE)
// has only neighbours.
type Neighbourhood interface {
	IsLANPeer(peerID string) bool
}

var _ Neighbourhood = (*p2p.Node)(nil)

// neighbour reports whether the mesh may sync with peer.
func (m *Mesh) neighbour(peer string) bool {
	if nb, ok := m.tr.(Neighbourhood); ok {
		return nb.IsLANPeer(peer)
	}
	return true
}

// DeliverFunc hands the owner the envelopes carried to its mailbox, and
// returns for each whether it is done with it (processed, or refused for
// good): those get a receipt that makes carriers drop them; the others are
// taken again at the next sync. What it Offers before returning (acks)
// goes back through the neighbour that brought the envelopes, in the same
// meeting.
type DeliverFunc func(ctx context.Context, envelopes [][]byte) []bool

// Config configures a Mesh. Only Transport is required; zero values are the
// documented defaults.
type Config struct {
	Transport Transport
	// Hops is how far our own envelopes may travel (default DefaultHops).
	Hops int
	// TTL is how long our own envelopes are carried (default DefaultTTL;
	// at most MaxTTL): each leaves with an expiry drawn between 3/4 TTL
	// and TTL from now, like a forwarded one. A carrier caps any claimed
	// expiry at its own TTL from now.
	TTL time.Duration
	// MaxItems and MaxBytes bound the envelopes carried (ours and others');
	// MaxReceipts bounds the receipts kept.
	MaxItems, MaxBytes, MaxReceipts int
	// SyncInterval is how often connected neighbours are synced with even
	// when nothing changed (default DefaultSyncInterval).
	SyncInterval time.Duration
	// MinSyncInterval is the least time between two syncs we start with
	// one neighbour (default DefaultMinSyncInterval).
	MinSyncInterval time.Duration
	// MaxSyncPeers bounds the neighbours synced with in one round (default
	// DefaultMaxSyncPeers); a dense LAN is covered epidemically.
	MaxSyncPeers int
	// MaxSyncBytes bounds the envelope bytes we send in one sync (default
	// DefaultMaxSyncBytes); the rest goes at the next one.
	MaxSyncBytes int
	// MaxOwnBytes bounds the envelope bytes for our own mailboxes taken in
	// one sync (default DefaultMaxSyncBytes); the rest comes at the next.
	MaxOwnBytes int
	// StreamTimeout bounds one sync (default DefaultStreamTimeout).
	StreamTimeout time.Duration
	// Depositor, if set, deposits carried envelopes with a recipient's
	// mailbox host when the carrier meets it (normally the Transport).
	Depositor mailbox.Opener
	// Store, if set, keeps what we carry for others across restarts (the
	// node's encrypted store).
	Store  *store.Store
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
}

// Stats are what a mesh node carries and has done since start.
type Stats struct {
	Carried       int   `json:"carried"`      // envelopes held for others
	CarriedBytes  int   `json:"carriedBytes"` // envelope bytes held (ours too)
	Own           int   `json:"own"`          // our own envelopes waiting for a carrier or the recipient
	Receipts      int   `json:"receipts"`
	Known         int   `json:"known"`     // ids remembered (held or seen)
	Delivered     int64 `json:"delivered"` // envelopes for our mailbox received through the mesh
	HandedToHosts int64 `json:"handedToHosts"`
	Syncs         int64 `json:"syncs"` // syncs completed (either side)
	BytesSent     int64 `json:"bytesSent"`
	BytesReceived int64 `json:"bytesReceived"`
	ItemsSent     int64 `json:"itemsSent"`
	ItemsReceived int64 `json:"itemsReceived"`
	Peers         int   `json:"peers"` // neighbours speaking the mesh protocol, ever met
}

// owner is one of our mailboxes.
type owner struct {
	key     ed25519.PrivateKey
	id      mailbox.ID
	deliver DeliverFunc
}

// Mesh is one node's carrier: it keeps envelopes for others, syncs with
// neighbours and takes what is carried for its own mailboxes. Its methods
// are safe for concurrent use.
type Mesh struct {
	cfg Config
	tr  Transport
	log *slog.Logger
	now func() time.Time
	st  *itemStore

	flushMu    sync.Mutex // one flush at a time
	mu         sync.Mutex
	owners     []owner
	lastSync   map[string]time.Time  // by peer: when we last started a sync
	inflight   map[string]int        // syncs running with a peer, either side
	delivering map[mailbox.Hash]bool // own envelopes being delivered
	fetching   map[mailbox.Hash]bool // ids a running sync has asked for
	syncedGen  map[string]uint64     // by peer: our set's generation at its last complete sync
	initiating map[string]bool       // syncs we started and run
	notMesh    map[string]time.Time  // peers that do not speak the protocol
	meshPeer   map[string]bool
	claims     map[*bucketClaim]bool // buckets syncs we answer are taking items in

	delivered, handed, syncs atomic.Int64
	bytesSent, bytesRecv     atomic.Int64
	itemsSent, itemsRecv     atomic.Int64
	itemsDup                 atomic.Int64 // items received that we knew
	kick                     chan struct{}
	ctx                      context.Context
	cancel                   context.CancelFunc
	wg                       sync.WaitGroup
	started, closed          atomic.Bool
}

// New makes a mesh node; Start runs it.
func New(cfg Config) (*Mesh, error) {
	if cfg.Transport == nil {
		return nil, errors.New("mesh: no transport")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Hops, DefaultHops)
	cfg.Hops = min(cfg.Hops, MaxHops)
	defDur(&cfg.TTL, DefaultTTL)
	cfg.TTL = min(cfg.TTL, MaxTTL)
	def(&cfg.MaxItems, DefaultMaxItems)
	def(&cfg.MaxBytes, DefaultMaxBytes)
	def(&cfg.MaxReceipts, DefaultMaxReceipts)
	defDur(&cfg.SyncInterval, DefaultSyncInterval)
	defDur(&cfg.MinSyncInterval, DefaultMinSyncInterval)
	def(&cfg.MaxSyncPeers, DefaultMaxSyncPeers)
	def(&cfg.MaxSyncBytes, DefaultMaxSyncBytes)
	def(&cfg.MaxOwnBytes, DefaultMaxSyncBytes)
	defDur(&cfg.StreamTimeout, DefaultStreamTimeout)
	m := &Mesh{
		cfg: cfg, tr: cfg.Transport, log: cfg.Logger, now: cfg.Now,
		st:       newItemStore(cfg.MaxItems, cfg.MaxBytes, cfg.MaxReceipts, cfg.Now),
		lastSync: map[string]time.Time{}, inflight: map[string]int{}, initiating: map[string]bool{}, delivering: map[mailbox.Hash]bool{}, fetching: map[mailbox.Hash]bool{}, syncedGen: map[string]uint64{}, notMesh: map[string]time.Time{}, meshPeer: map[string]bool{},
		kick: make(chan struct{}, 1), claims: map[*bucketClaim]bool{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
		m.st.now = time.Now
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if cfg.Store != nil {
		m.st.journal = map[mailbox.Hash]*item{}
		if err := m.load(m.ctx); err != nil {
			m.cancel()
			return nil, fmt.Errorf("mesh: load carried items: %w", err)
		}
	}
	return m, nil
}

// Start serves the protocol and syncs with neighbours until Close.
func (m *Mesh) Start() {
	if m.started.Swap(true) {
		return
	}
	m.tr.Handle(Protocol, m.serve)
	meet := func(peerID string, starting bool) {
		if !m.enter() {
			return
		}
		defer m.wg.Done()
		// One sync runs both ways: on meeting, the side with the smaller id
		// starts it (the other syncs at its next round if that fails).
		// A neighbour met before Start is synced with whatever the ids:
		// if it had the smaller one, it tried before we served the
		// protocol, and waits for its next round.
		m.handToHosts(m.ctx, peerID)
		if m.neighbour(peerID) && (starting || m.tr.PeerID() < peerID) {
			m.syncWith(m.ctx, peerID, true)
		}
	}
	m.tr.OnConnected(func(peerID string) { meet(peerID, false) })
	// Neighbours met before Start (a bootstrap peer dialled while the
	// node was still starting) would otherwise wait for the next round.
	for _, p := range m.tr.ConnectedPeers() {
		go meet(p, true)
	}
	if m.enter() {
		go m.loop()
	}
}

// Close stops syncing and waits for running syncs.
func (m *Mesh) Close() error {
	m.mu.Lock()
	if m.closed.Swap(true) {
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	if m.started.Load() {
		m.tr.Unhandle(Protocol)
	}
	m.cancel()
	m.wg.Wait()
	m.flush(context.Background())
	return nil
}

// enter registers a goroutine with Close, unless closed.
func (m *Mesh) enter() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return false
	}
	m.wg.Add(1)
	return true
}

// Own makes key one of our mailboxes: envelopes carried for it are handed
// to deliver (including those already held) and answered with receipts.
//
// Owning a key again is a no-op. The most recently owned keys are the
// ones proven to neighbours (at most MaxOwners): own the current key last.
func (m *Mesh) Own(key ed25519.PrivateKey, deliver DeliverFunc) {
	o := owner{key: key, id: mailbox.KeyID(key), deliver: deliver}
	m.mu.Lock()
	for _, x := range m.owners {
		if x.id == o.id {
			m.mu.Unlock()
			return
		}
	}
	m.owners = append(m.owners, o)
	m.mu.Unlock()
	var held []*item
	for _, it := range m.st.selectItems(func(it *item) bool { return it.env != nil && it.mailbox == o.id }) {
		if m.claim(it.id) {
			if m.st.isKnown(it.id) && m.st.get(it.id) == nil {
				m.unclaim(it.id)
				continue
			}
			held = append(held, it)
		}
	}
	if len(held) > 0 {
		m.deliverOwn(m.ctx, o, held)
		m.flush(m.ctx)
	}
}

func (m *Mesh) ownerOf(id mailbox.ID) (owner, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.owners {
		if o.id == id {
			return o, true
		}
	}
	return owner{}, false
}

// Offer hands the mesh one of our own envelopes for mailbox id (hosts: the
// recipient's mailbox hosts, or none). It is carried with Config.Hops and
// an expiry drawn between 3/4 Config.TTL and Config.TTL from now, so that
// it looks like one carried for someone else (sendHops); offering the same
// envelope again is a no-op.
func (m *Mesh) Offer(id mailbox.ID, envelope []byte, hosts []string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if len(envelope) == 0 {
		return fmt.Errorf("%w: empty envelope", ErrMalformed)
	}
	if len(envelope) > wire.MaxEnvelopeSize || len(envelope) > m.cfg.MaxBytes {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(envelope))
	}
	if len(hosts) > MaxHosts {
		hosts = hosts[:MaxHosts]
	}
	h := mailbox.HashEnvelope(envelope)
	if m.st.isKnown(h) {
		return nil
	}
	it := &item{id: h, mailbox: id, hops: uint32(m.cfg.Hops), expires: m.ownExpiry(),
		env: append([]byte(nil), envelope...), hosts: append([]string(nil), hosts...), own: true}
	if !m.st.put(it) {
		return ErrFull
	}
	m.log.Debug("meshOffered", "mailbox", id.Short(), "bytes", len(envelope))
	m.poke()
	return nil
}

// Stats reports what this node carries and has done.
func (m *Mesh) Stats() Stats {
	envs, carried, bytes, receipts, known := m.st.counts()
	m.mu.Lock()
	peers := len(m.meshPeer)
	m.mu.Unlock()
	return Stats{
		Carried: carried, CarriedBytes: bytes, Own: envs - carried, Receipts: receipts, Known: known,
		Delivered: m.delivered.Load(), HandedToHosts: m.handed.Load(), Syncs: m.syncs.Load(),
		BytesSent: m.bytesSent.Load(), BytesReceived: m.bytesRecv.Load(),
		ItemsSent: m.itemsSent.Load(), ItemsReceived: m.itemsRecv.Load(), Peers: peers,
	}
}

// poke asks the loop for a sync round soon: we hold something new.
func (m *Mesh) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Mesh) loop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.SyncInterval)
	defer t.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	var again <-chan time.Time // a round for the neighbours skipped as too recent
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-sweep.C:
			m.st.sweep(m.now())
			m.flush(m.ctx)
			continue
		case <-t.C:
		case <-m.kick:
		case <-again:
		}
		again = nil
		if m.round(m.ctx) {
			again = time.After(m.cfg.MinSyncInterval)
		}
		m.flush(m.ctx)
	}
}

// round syncs with up to MaxSyncPeers random neighbours that speak the
// protocol and were not synced with lately, and hands envelopes to
// mailbox hosts in range. It reports whether neighbours were left out
// (synced too recently, or beyond MaxSyncPeers): another round is due.
func (m *Mesh) round(ctx context.Context) (deferred bool) {
	peers := m.tr.ConnectedPeers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	n := 0
	for _, p := range peers {
		if ctx.Err() != nil {
			return false
		}
		if n == m.cfg.MaxSyncPeers {
			return true
		}
		// Mailbox hosts take envelopes from wherever they are.
		m.handToHosts(ctx, p)
		if !m.neighbour(p) {
			continue
		}
		switch m.syncWith(ctx, p, false) {
		case synced:
			n++
		case tooRecent:
			deferred = true
		}
	}
	return deferred
}

// ownExpiry is the expiry of one of our own envelopes: uniform between 3/4
// TTL and TTL from now (whole seconds, as on the wire). A forwarded item
// has aged since its author drew its expiry, so an author that always said
// "TTL from now" would stand out to the first carrier.
func (m *Mesh) ownExpiry() time.Time {
	spread := int64(m.cfg.TTL/time.Second) / 4
	return m.now().Add(m.cfg.TTL - time.Duration(rand.Int64N(spread+1))*time.Second).Truncate(time.Second)
}
