// Package messenger is samizdat's conversation engine: contacts, the
// durable outbox, the delivery state machine (queued → sent → delivered,
// or failed) and the /samizdat/msg/1 protocol that carries end-to-end
// encrypted envelopes between two nodes (DESIGN §7).
//
// Every message is encrypted with the crypto core (PQXDH-style initiation,
// then the double ratchet) before it touches the disk: the outbox holds
// only ciphertext, and the ratchet state, the message and the outbox entry
// change in one store transaction, so a crash never loses a message nor
// desynchronises a session. Delivery is retried with backoff until the
// recipient's encrypted ack arrives; the receiver dedupes by message id
// and acks again, which gives exactly-once display.
//
// The package never logs plaintext, keys or full account ids, and never
// imports go-libp2p: it reaches the network through the Transport
// interface (implemented by internal/p2p).
package messenger

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// ProtocolMsg is the stream protocol for direct delivery.
const ProtocolMsg = "/samizdat/msg/1"

// Store blob names owned by this package.
const (
	blobIdentity = "identity"
	blobPrekeys  = "prekeys"
	blobName     = "profile.name"
	blobAddrs    = "node.addrs"
)

// Defaults for Config's zero values.
const (
	DefaultRetryMin       = time.Second
	DefaultRetryMax       = 5 * time.Minute
	DefaultGiveUpAfter    = 7 * 24 * time.Hour
	DefaultStreamTimeout  = 30 * time.Second
	DefaultOneTimePrekeys = 100
	maxSessionsPerContact = 5
	outboxBatch           = 500
	pollInterval          = time.Second
)

// Errors returned to users of the package.
var (
	// ErrUnknownContact is returned when a name or account id matches no contact.
	ErrUnknownContact = errors.New("no such contact")
	// ErrNotInitialised is returned by New for a store without an identity.
	ErrNotInitialised = errors.New("profile has no identity (run samizdat init)")
	// ErrEmptyMessage is returned by Send for an empty text.
	ErrEmptyMessage = errors.New("message is empty")
	// ErrMessageTooLong is returned by Send for a text over wire.MaxTextSize.
	ErrMessageTooLong = errors.New("message is too long")
	// ErrNoKeys is returned when a contact's card carries no prekey bundle.
	ErrNoKeys = errors.New("contact card carries no keys to start a session")
	// ErrSelf is returned when adding one's own invite as a contact.
	ErrSelf = errors.New("this invite is your own")
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("messenger is closed")
	// ErrNotReachable is returned by DeliverNow paths when there is no transport.
	ErrNotReachable = errors.New("contact not reachable")
)

// Transport is what the messenger needs from the network (internal/p2p).
type Transport interface {
	Handle(protocol string, h func(s p2p.Stream))
	Unhandle(protocol string)
	OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error)
	AddAddrs(peerID string, addrs []string)
	Connect(ctx context.Context, peerID string, addrs []string) error
	OnConnected(f func(peerID string))
	ConnectedPeers() []string
	PeerID() string
	Addrs() []string
}

// Config configures a Messenger. Zero values are documented defaults.
type Config struct {
	Store *store.Store
	// Transport is the network; nil runs offline: messages are queued and
	// delivered by the next node that runs on this profile.
	Transport Transport
	// PeerID is this device's transport id, used in the contact card when
	// Transport is nil.
	PeerID string
	// DeviceKey is this device's transport key (Ed25519; PeerID derives
	// from it), which certifies the device in our card when Transport is
	// nil or cannot sign (p2p.Ed25519Key reads it from a profile).
	DeviceKey ed25519.PrivateKey
	Logger    *slog.Logger     // nil: discard
	Rand      io.Reader        // nil: crypto/rand
	Now       func() time.Time // nil: time.Now
	// RetryMin and RetryMax bound the exponential backoff between delivery
	// attempts (defaults 1 s and 5 min).
	RetryMin, RetryMax time.Duration
	// GiveUpAfter is how long a message is retried before it is marked
	// failed (default 7 days).
	GiveUpAfter   time.Duration
	StreamTimeout time.Duration // per delivery stream (default 30 s)
	Ratchet       ratchet.Config
	// MailboxHosts keep our mail while we are offline; they are listed in
	// our card. None: contacts can only reach us directly.
	MailboxHosts []MailboxHost
	// FetchInterval is how often the mailboxes are checked (default 30 s).
	FetchInterval time.Duration
	// NoReadReceipts keeps us from telling contacts which of their
	// messages we read (zero: we tell them, as DESIGN §7's optional
	// receipt).
	NoReadReceipts bool
	// MailboxRotateAfter is the least age of our mailbox key before a card
	// update replaces it (default DefaultMailboxRotateAfter).
	MailboxRotateAfter time.Duration
	// Mesh, if set, carries envelopes to contacts we cannot reach through
	// nearby peers, and brings ours (mesh mode, see mesh.go).
	Mesh Mesh
	// Media, if set, carries attachments (attachments.go); the messenger
	// starts it and closes it with itself. Nil: files cannot be sent.
	Media *media.Service
	// MaxChannelFileSize bounds the files posted on and fetched from
	// channels (0: DefaultMaxChannelFileSize, 100 MiB; channelfiles.go).
	MaxChannelFileSize int64
	// Prekeys is the prekey schedule (zero: handshake's defaults, weekly
	// rotation and 30 days of grace; see prekeys.go).
	Prekeys handshake.Policy
}

// Messenger is one account's conversation engine. It is safe for
// concurrent use.
type Messenger struct {
	cfg Config
	// receiptsOff turns read receipts off at run time (the user's
	// setting); Config.NoReadReceipts wins over it.
	receiptsOff atomic.Bool
	st          *store.Store
	tr          Transport
	log         *slog.Logger
	rand        io.Reader
	now         func() time.Time
	sent        sentClock // timestamps of what we write (order.go)
	id          *keys.Identity
	acct        string
	name        string

	prekeyMu sync.Mutex // guards prekeys and their persistence
	prekeys  *handshake.Prekeys
	pk       prekeyState // rotation, claims served and made (prekeys.go)

	// sendq feeds commitLoop. Session state needs no lock of its own:
	// every change happens inside a store write transaction, and the store
	// runs those one at a time.
	sendq chan *sendReq

	ratchets  ratchetCache
	devIdx    deviceIndex  // contacts' linked devices (devices.go)
	hist      historyState // history for linked devices (history.go)
	faults    faults       // bad input and refusals, counted (health.go)
	receipts  ctlReceipts  // acks of envelopes with no message row (receive.go)
	initLimit initLimiter  // new sessions per remote device
	unindexed atomic.Bool  // messages stored since the last IndexPending

	// files deposited at contacts' hosts (mediahosts.go)
	mediaHosts *mediaHostsState
	// who holds the files we sent to groups (groupfileholders.go)
	groupHolders *groupHolders

	mbKey     ed25519.PrivateKey // our current mailbox key, for hosts and the mesh (guarded by mbMu)
	mbKeys    []mailboxKey       // every key still fetched, oldest first (guarded by mbMu)
	rotateMu  sync.Mutex         // one new card (and mailbox rotation) at a time
	hostsMu   sync.Mutex         // guards cfg.MailboxHosts (SetMailboxHosts)
	fetchKick chan struct{}
	mbMu      sync.Mutex
	mbStatus  map[string]MailboxStatus // by host peer id
	deposited map[string]bool          // depositKey → left with the hosts
	meshBoxes map[string][]byte        // depositKey → sealed box offered to the mesh
	seen      map[mailbox.Hash]bool    // envelopes fetched and processed
	health    hostHealth               // measured health of mailbox hosts (hostchoice.go)
	// sealedTrials counts contacts whose sessions were tried on a sealed
	// envelope (tests check junk costs O(1) of them).
	sealedTrials atomic.Int64

	cardMu     sync.Mutex
	ownCard    []byte
	cardAddr   string    // addrs the card was made for
	cardIssued time.Time // when it was signed
	cardSerial uint64

	cardChanged chan struct{} // our card was re-signed: publish it

	lookupMu   sync.Mutex
	lastLookup map[int64]time.Time // contact → last DHT card lookup
	// lastDevLookup: device → last DHT lookup of its own card (devicerecord.go)
	lastDevLookup map[string]time.Time

	cardSentMu sync.Mutex
	cardSent   map[int64]uint64 // contact → serial of our card it was sent (committed)

	subsMu sync.Mutex
	subs   map[chan Event]struct{}

	flightMu   sync.Mutex
	inflight   map[int64]*flight
	devFlights map[string]bool // device copies in delivery (fanout.go)

	bcOnce sync.Once
	bcast  *broadcast // channels and groups (broadcast.go)
	groups groupCache // computed group memberships (groups.go)
	ops    opCache    // checked group ops (groupops.go)
	dsync  devSync    // sync between our own devices (devsync.go)

	revokedSt revokedState // this device revoked (revoked.go)

	// encStats counts the encryptions groups cost (groupbatch.go).
	encStats groupEncStats

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed chan struct{}
}

// InitProfile creates a new identity and prekeys in an empty store.
func InitProfile(ctx context.Context, st *store.Store, name string, rnd io.Reader) error {
	if rnd == nil {
		rnd = rand.Reader
	}
	id, err := keys.GenerateIdentity(rnd)
	if err != nil {
		return err
	}
	pk, err := handshake.NewPrekeys(rnd, id, DefaultOneTimePrekeys)
	if err != nil {
		return err
	}
	return st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.Blob(blobIdentity); err == nil {
			return store.ErrExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.PutBlob(blobIdentity, id.Marshal()); err != nil {
			return err
		}
		if err := tx.PutBlob(blobPrekeys, pk.Marshal()); err != nil {
			return err
		}
		return tx.PutBlob(blobName, []byte(name))
	})
}

// New loads the account from the store. Call Start to begin delivering.
func New(ctx context.Context, cfg Config) (*Messenger, error) {
	m := &Messenger{
		cfg: cfg, st: cfg.Store, tr: cfg.Transport, log: cfg.Logger, rand: cfg.Rand, now: cfg.Now,
		sendq: make(chan *sendReq), fetchKick: make(chan struct{}, 1), cardChanged: make(chan struct{}, 1), subs: map[chan Event]struct{}{}, inflight: map[int64]*flight{},
		kick: make(chan struct{}, 1), closed: make(chan struct{}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.cfg.RetryMin <= 0 {
		m.cfg.RetryMin = DefaultRetryMin
	}
	if m.cfg.RetryMax <= 0 {
		m.cfg.RetryMax = DefaultRetryMax
	}
	if m.cfg.GiveUpAfter <= 0 {
		m.cfg.GiveUpAfter = DefaultGiveUpAfter
	}
	if m.cfg.StreamTimeout <= 0 {
		m.cfg.StreamTimeout = DefaultStreamTimeout
	}
	if m.cfg.MailboxRotateAfter <= 0 {
		m.cfg.MailboxRotateAfter = DefaultMailboxRotateAfter
	}
	if m.cfg.FetchInterval <= 0 {
		m.cfg.FetchInterval = DefaultFetchInterval
	}
	err := m.st.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobIdentity)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotInitialised
		} else if err != nil {
			return err
		}
		if m.id, err = keys.UnmarshalIdentity(b); err != nil {
			return err
		}
		if b, err = tx.Blob(blobPrekeys); err != nil {
			return err
		}
		if m.prekeys, err = handshake.UnmarshalPrekeys(b); err != nil {
			return err
		}
		if b, err = tx.Blob(blobName); err == nil {
			m.name = string(b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.acct = AccountIDOf(m.id)
	// The mailbox key serves the mailbox hosts and the mesh.
	if len(m.cfg.MailboxHosts) > 0 || m.cfg.Mesh != nil {
		if err := m.loadMailboxKey(ctx); err != nil {
			return nil, err
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.commitLoop()
	}()
	return m, nil
}

// Start registers the protocol handler and starts the delivery loop. It
// returns at once; Close stops everything Start started.
func (m *Messenger) Start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	m.loadRevoked(ctx) // revoked.go
	m.startPrekeys(ctx)
	if m.tr != nil {
		m.tr.Handle(ProtocolMsg, m.handleStream)
		m.tr.Handle(ProtocolCard, m.handleCardRequest) // short invites (shortinvite.go)
		m.tr.OnConnected(func(peerID string) { m.peerConnected(ctx, peerID) })
		addrs := transportAddrs(m.tr.Addrs())
		_ = m.st.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobAddrs, []byte(joinLines(addrs))) })
		m.announceDevice(ctx, addrs) // devsync.go
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.greetContacts(ctx)
		}()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.pushCardIfNew(ctx) // cardpush.go
		}()
		if d := m.directory(); d != nil {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.publishLoop(ctx, d)
			}()
		}
		// Also without hosts: SetMailboxHosts may give some later.
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.fetchLoop(ctx)
		}()
	}
	m.meshOwnKeys()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.run(ctx)
	}()
	m.startBroadcast(ctx)
	m.startMedia(ctx)
	m.startHistory(ctx)
}

// Close stops the delivery loop and waits for in-flight deliveries.
func (m *Messenger) Close() error {
	select {
	case <-m.closed:
		return nil
	default:
	}
	close(m.closed)
	if m.tr != nil {
		m.tr.Unhandle(ProtocolMsg)
		m.tr.Unhandle(ProtocolCard)
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.stopBroadcast()
	m.wg.Wait()
	m.stopMedia()
	m.subsMu.Lock()
	for ch := range m.subs {
		close(ch)
		delete(m.subs, ch)
	}
	m.subsMu.Unlock()
	return nil
}

// AccountID returns this account's id.
func (m *Messenger) AccountID() string { return m.acct }

// Name returns this account's display name.
func (m *Messenger) Name() string { return m.name }

// Identity returns this account's public identity.
func (m *Messenger) Identity() keys.PublicIdentity { return m.id.Public() }

func (m *Messenger) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}
