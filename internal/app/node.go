package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/api"
	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/mesh"
	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// DefaultListen are the listen addresses of `samizdat up` without
// --listen: loopback only, so that nothing is exposed (or dialled) beyond
// this machine unless the user asks for it.
var DefaultListen = []string{
	"/ip4/127.0.0.1/tcp/0",
	"/ip4/127.0.0.1/udp/0/quic-v1",
	"/ip4/127.0.0.1/tcp/0/ws",
}

// Options configure Start.
type Options struct {
	Dir       string
	Keys      KeySource
	Listen    []string // nil: DefaultListen
	Bootstrap []string
	APIAddr   string // "127.0.0.1:0" when empty; "-" for no API
	EnableDHT bool
	// LoopbackOnly makes the node refuse every non-loopback address (tests
	// and the demo set it).
	LoopbackOnly bool
	// Mesh runs mesh mode (docs/MESH.md): nearby peers carry envelopes for
	// each other; MDNS finds them on the LAN (taken only when the node
	// listens beyond loopback, and never with LoopbackOnly).
	Mesh       bool
	MeshConfig mesh.Config // tuning (Transport is set by Start)
	MDNS       bool
	Logger     *slog.Logger
	Messenger  messenger.Config // tuning (Store and Transport are set by Start)
	// MaxFileSize bounds the files sent and fetched (0:
	// media.DefaultMaxFileSize, 2 GiB).
	MaxFileSize int64
	// PartialMaxAge: an incoming file still incomplete this long after it
	// arrived is given up (0: media.DefaultPartialMaxAge, 30 days).
	PartialMaxAge time.Duration
	// Relays are circuit relays (full multiaddrs) the node books slots on
	// while it is not publicly reachable; its mailbox hosts are used that
	// way too. Their relayed addresses go in the card.
	Relays []string
	// BehindNAT makes the node book relay slots at once instead of waiting
	// for AutoNAT to find it unreachable.
	BehindNAT bool
	// ServeMailbox, if set, makes the node a mailbox host for others too
	// (`up --serve-mailbox`), started before the API.
	ServeMailbox *MailboxOptions
	// NoMailboxDiscovery keeps a node without configured mailbox hosts
	// from looking for some in the DHT (by default it does, when the DHT
	// is on).
	NoMailboxDiscovery bool
	Transports         TransportOptions // censorship-resistant transports (transports.go)
	// Hooks are the commands of `up --on-alert` / `--on-message` (hooks.go).
	Hooks HookOptions

	api    *apiHandoff      // set by StartOrWait: the API server already running
	gossip p2p.GossipParams // the scale benchmarks' gossipsub tuning (benchscale.go)
}

// mailboxHosts returns the mailbox hosts to use: the given ones, which are
// then remembered in the profile, or else those remembered.
func mailboxHosts(ctx context.Context, st *store.Store, given []messenger.MailboxHost) ([]messenger.MailboxHost, error) {
	if len(given) > 0 {
		b, _ := json.Marshal(given)
		return given, st.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobMailboxHosts, b) })
	}
	var saved []messenger.MailboxHost
	err := st.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobMailboxHosts)
		if err != nil {
			return nil
		}
		return json.Unmarshal(b, &saved)
	})
	return saved, err
}

// ParseMailboxHosts turns full multiaddrs (…/p2p/<peer id>) into mailbox
// hosts for the messenger.
func ParseMailboxHosts(addrs []string) ([]messenger.MailboxHost, error) {
	var out []messenger.MailboxHost
	for _, a := range addrs {
		i := strings.LastIndex(a, "/p2p/")
		if i <= 0 || i+5 == len(a) {
			return nil, fmt.Errorf("--mailbox-host %q: give the host's full address, ending in /p2p/<peer id> (samizdat relay prints it)", a)
		}
		out = append(out, messenger.MailboxHost{PeerID: a[i+5:], Addrs: []string{a[:i]}})
	}
	return out, nil
}

// MediaDir is the profile's folder of attachment chunks (sealed already:
// they are ciphertext under keys kept in the encrypted store).
const MediaDir = "media"

// Node is a running samizdat node on one profile.
type Node struct {
	Dir       string
	Store     *store.Store
	P2P       *p2p.Node
	Mesh      *mesh.Mesh // nil unless Options.Mesh
	Messenger *messenger.Messenger
	APIAddr   string
	Token     string // the local API's token, fresh on every start
	logins    *api.Logins
	// MailboxService is the mailbox host of Options.ServeMailbox (nil
	// without).
	MailboxService *MailboxService

	log     *slog.Logger
	srv     *http.Server
	unlock  func()
	cancel  context.CancelFunc
	bg      sync.WaitGroup // background work (mailbox discovery)
	relays  []string       // Options.Relays
	done    chan struct{}
	memWG   sync.WaitGroup   // the network-memory saver
	hooks   *hooks           // nil without Options.Hooks commands
	set     *settings        // the user's settings (settings.go)
	devices *devices.Service // linked devices (devices.go)
}

// Start opens the profile (taking its lock), starts the libp2p node, the
// messenger and the local API, and writes api.json.
func Start(ctx context.Context, o Options) (_ *Node, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, ProfileFile)); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNoProfile, o.Dir)
	}
	unlock, err := lockDaemon(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: o.Dir, log: log, unlock: unlock, done: make(chan struct{})}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.Store, err = openStore(o.Dir, o.Keys); err != nil {
		return nil, err
	}
	var priv []byte
	if err := n.Store.View(ctx, func(tx *store.Tx) (err error) { priv, err = tx.Blob(blobP2PKey); return err }); err != nil {
		return nil, fmt.Errorf("load device key: %w", err)
	}
	// Without --listen the node reuses the ports of its last run, so that
	// contacts holding its card find it again after a restart.
	listen, saved := o.Listen, false
	if listen == nil {
		listen = DefaultListen
		_ = n.Store.View(ctx, func(tx *store.Tx) error {
			if b, err := tx.Blob(blobListen); err == nil && len(b) > 0 {
				listen, saved = strings.Split(string(b), "\n"), true
			}
			return nil
		})
	}
	ctx, n.cancel = context.WithCancel(ctx)
	mc := o.Messenger
	if mc.MailboxHosts, err = mailboxHosts(ctx, n.Store, mc.MailboxHosts); err != nil {
		return nil, err
	}
	n.relays = o.Relays
	pc := p2p.Config{
		PrivateKey:         priv,
		ListenAddrs:        listen,
		BootstrapPeers:     o.Bootstrap,
		EnableDHT:          o.EnableDHT,
		DHTServer:          o.EnableDHT,
		StaticRelays:       n.staticRelays(mc.MailboxHosts),
		ForcePrivate:       o.BehindNAT,
		EnableHolePunching: true,
		LoopbackOnly:       o.LoopbackOnly,
		EnableMDNS:         mdnsWanted(o, listen),
		Logger:             log.With("component", "p2p"),
		Gossip:             o.gossip,
		CountBandwidth:     bandwidthWanted(), // the idle benchmark's breakdown (benchbw.go)
	}
	if err := n.transportConfig(ctx, &pc, o.Transports); err != nil {
		return nil, err
	}
	n.P2P, err = p2p.New(ctx, pc)
	if err != nil && saved {
		log.Info("savedPortsUnavailable", "err", err)
		pc.ListenAddrs = DefaultListen
		n.P2P, err = p2p.New(ctx, pc)
	}
	if err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	if o.Listen == nil {
		var bound []string
		for _, a := range n.P2P.Addrs() {
			if strings.Contains(a, "/p2p-circuit") {
				continue // a relay slot, not a port of ours
			}
			if i := strings.Index(a, "/p2p/"); i > 0 {
				bound = append(bound, a[:i])
			}
		}
		_ = n.Store.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobListen, []byte(strings.Join(bound, "\n"))) })
	}
	mc.Store, mc.Transport, mc.Logger = n.Store, n.P2P, log.With("component", "messenger")
	if mc.Media, err = media.New(media.Config{Dir: filepath.Join(o.Dir, MediaDir), Store: n.Store, Transport: n.P2P,
		MaxFileSize: o.MaxFileSize, Logger: log.With("component", "media"),
		Expiry: media.ExpirySettings{PartialMaxAge: o.PartialMaxAge},
		// Set before the messenger starts, the only time fetches begin.
		OnChange: func(id string, contact int64, state string) { n.Messenger.FileChanged(id, contact, state) },
	}); err != nil {
		return nil, err
	}
	if o.Mesh {
		if err := n.startMesh(o, log); err != nil {
			return nil, err
		}
		mc.Mesh = n.Mesh
	}
	if n.Messenger, err = messenger.New(ctx, mc); err != nil {
		return nil, err
	}
	n.set = &settings{n: n}
	n.Messenger.OnSettingsSynced(n.set.applySynced) // settingsync.go
	n.devices = devices.New(devices.Config{Store: n.Store, Transport: n.P2P, Account: n.Messenger, Logger: log.With("component", "devices")})
	if st, err := n.set.Settings(ctx); err == nil {
		n.Messenger.SetReadReceipts(st.ReadReceipts)
		applyAutoDownload(n, st)
	}
	if o.Hooks.OnAlert != nil || o.Hooks.OnMessage != nil || o.Hooks.OnRequest != nil {
		if o.Hooks.Muted == nil {
			o.Hooks.Muted = n.set.muted
		}
		n.hooks = startHooks(n.Messenger, o.Hooks, log.With("component", "hooks"))
	}
	n.Messenger.Start(ctx)
	if len(mc.MailboxHosts) == 0 && o.EnableDHT && !o.NoMailboxDiscovery {
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			n.discoverMailboxHosts(ctx)
		}()
	}
	n.startNetMemory(ctx)
	n.startBandwidthDump(ctx)
	// The mailbox service is up before api.json says the node is.
	if o.ServeMailbox != nil {
		if n.MailboxService, err = n.ServeMailbox(*o.ServeMailbox); err != nil {
			return nil, err
		}
	}
	if o.APIAddr != "-" {
		if err := n.startAPI(o.APIAddr, o.api); err != nil {
			return nil, err
		}
	}
	log.Info("nodeStarted", "peer", n.P2P.PeerID(), "addrs", n.P2P.Addrs(), "api", n.APIAddr)
	return n, nil
}

func (n *Node) startAPI(addr string, h *apiHandoff) error {
	if h == nil {
		ln, token, err := listenAPI(n.Dir, addr)
		if err != nil {
			return err
		}
		h = &apiHandoff{ln: ln, token: token, swap: &swapHandler{}, logins: api.NewLogins(nil)}
		h.srv = &http.Server{Handler: h.swap, ReadHeaderTimeout: 10 * time.Second}
		defer func() { go func() { _ = h.srv.Serve(ln) }() }()
	}
	n.Token, n.logins = h.token, h.logins
	n.APIAddr = h.ln.Addr().String()
	h.swap.set(api.New(api.Config{Messenger: n.Messenger, Status: n.Status, Connectivity: n.Connectivity, Settings: n.set, Devices: devicesAPI{n.devices, n.Messenger}, Token: n.Token, Addr: n.APIAddr, Logins: n.logins, Logger: n.log.With("component", "api")}))
	n.srv = h.srv
	info, _ := json.Marshal(apiclient.Info{Addr: n.APIAddr, Token: n.Token, PID: os.Getpid()})
	return writeFileAtomic(filepath.Join(n.Dir, APIFile), info, 0o600)
}

// LoginURL returns a one-time address of the web app (see LoginURL), or ""
// when the node runs no API.
func (n *Node) LoginURL() string {
	if n.logins == nil {
		return ""
	}
	return LoginURL(n.APIAddr, n.logins.Code())
}

// Status reports the node's state for `samizdat status`.
func (n *Node) Status(ctx context.Context) (apiclient.Status, error) {
	st := apiclient.Status{
		AccountID: n.Messenger.AccountID(),
		Name:      n.Messenger.Name(),
		Running:   true,
		Outbox:    map[string]int{},
	}
	if svc := n.Messenger.Media(); svc != nil {
		st.MaxFileSize = svc.MaxFileSize()
	}
	st.Revoked = revocation(n.Messenger) // devices.go
	if n.P2P != nil {
		st.PeerID = n.P2P.PeerID()
		st.Addrs = n.P2P.Addrs()
		st.ConnectedPeers = n.P2P.ConnectedPeers()
		n.netStatus(&st)
	}
	err := n.Store.View(ctx, func(tx *store.Tx) error {
		counts, err := tx.OutgoingStateCounts()
		for k, v := range counts {
			st.Outbox[k] = v
		}
		if err != nil {
			return err
		}
		cs, err := tx.Contacts()
		st.Contacts = len(cs)
		return err
	})
	st.Mesh = n.meshStatus()
	if pk, err := n.Messenger.PrekeyStatus(ctx); err == nil {
		var rotated time.Time
		if pk.SignedCreated != 0 {
			rotated = time.Unix(pk.SignedCreated, 0)
		}
		st.Prekeys = &apiclient.PrekeyStatus{SignedPrekeyID: pk.SignedPrekeyID, Rotated: rotated,
			Generations: pk.Generations, OneTime: pk.OneTime, Unclaimed: pk.Unclaimed}
	}
	if st.Addrs == nil {
		st.Addrs = []string{}
	}
	if st.ConnectedPeers == nil {
		st.ConnectedPeers = []string{}
	}
	return st, err
}

// Close shuts the node down cleanly: API, messenger, network, store, lock.
func (n *Node) Close() error {
	var errs []error
	if n.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = n.srv.Shutdown(ctx)
		cancel()
		_ = os.Remove(filepath.Join(n.Dir, APIFile))
	}
	if n.MailboxService != nil {
		errs = append(errs, n.MailboxService.Close())
		n.MailboxService = nil
	}
	// The mesh first: it hands carried mail to the messenger.
	if n.Mesh != nil {
		errs = append(errs, n.Mesh.Close())
	}
	if n.hooks != nil {
		n.hooks.Close()
	}
	if n.Messenger != nil {
		errs = append(errs, n.Messenger.Close())
	}
	if n.cancel != nil {
		n.cancel()
	}
	n.bg.Wait()
	n.memWG.Wait()
	n.saveNetMemory()
	if n.P2P != nil {
		errs = append(errs, n.P2P.Close())
	}
	if n.Store != nil {
		errs = append(errs, n.Store.Close())
	}
	if n.unlock != nil {
		n.unlock()
		n.unlock = nil
	}
	return errors.Join(errs...)
}

// Offline is a profile opened without the network, for CLI commands run
// while no node is up: messages sent are queued durably and delivered by
// the next `samizdat up`.
type Offline struct {
	Store     *store.Store
	Messenger *messenger.Messenger
	peerID    string
	unlock    func()
}

// OpenOffline opens a profile without starting the network. It fails with
// ErrLocked if a node runs on the profile (use its API instead).
func OpenOffline(ctx context.Context, dir string, ks KeySource) (*Offline, error) {
	if _, err := os.Stat(filepath.Join(dir, ProfileFile)); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNoProfile, dir)
	}
	unlock, err := lockProfile(dir)
	if err != nil {
		return nil, err
	}
	st, err := openStore(dir, ks)
	if err != nil {
		unlock()
		return nil, err
	}
	var priv []byte
	_ = st.View(ctx, func(tx *store.Tx) (err error) { priv, err = tx.Blob(blobP2PKey); return err })
	peerID, _ := p2p.PeerIDFromKey(priv)
	devKey, _ := p2p.Ed25519Key(priv)
	hosts, _ := mailboxHosts(ctx, st, nil)
	m, err := messenger.New(ctx, messenger.Config{Store: st, PeerID: peerID, DeviceKey: devKey, MailboxHosts: hosts})
	if err != nil {
		st.Close()
		unlock()
		return nil, err
	}
	return &Offline{Store: st, Messenger: m, peerID: peerID, unlock: unlock}, nil
}

// Status reports what an offline profile knows.
func (o *Offline) Status(ctx context.Context) (apiclient.Status, error) {
	n := &Node{Store: o.Store, Messenger: o.Messenger}
	st, err := n.Status(ctx)
	st.Running, st.PeerID = false, o.peerID
	return st, err
}

// Close releases the store and the lock.
func (o *Offline) Close() error {
	o.Messenger.Close()
	err := o.Store.Close()
	o.unlock()
	return err
}

// staticRelays are the relays the node books slots on when it is not
// publicly reachable: the configured ones or, with none, the mailbox hosts
// (a `samizdat relay` is both; a host that is no relay just refuses). A
// slot is booked with the device's identity: a node given --relay keeps
// its mailbox hosts from seeing its device (issue 14).
func (n *Node) staticRelays(hosts []messenger.MailboxHost) []string {
	out := slices.Clone(n.relays)
	if len(out) > 0 {
		return out
	}
	for _, h := range hosts {
		for _, a := range h.Addrs {
			if strings.Contains(a, "/p2p-circuit") {
				continue // a host reached through another relay: no slot through a circuit
			}
			if !strings.Contains(a, "/p2p/") {
				a += "/p2p/" + h.PeerID
			}
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}
