package app

// The volunteer relay (`samizdat relay`, issue 4) and the mailbox service a
// normal node may offer too (`samizdat up --serve-mailbox`).
//
// A relay profile is a directory (0700) holding only: relay.key (0600: the
// relay's libp2p key, so its peer id, which users write into their cards
// and --bootstrap lists, survives restarts), relay.listen (the bound
// listen addresses of the last run, reused without --listen), mailbox.db
// (the envelopes it holds, encrypted at rest like a profile's store) with
// mailbox.key (0600: the random key of mailbox.db; what it protects is
// ciphertext already, so no passphrase is asked), and lock. It has no
// identity: a relay is nobody's account.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Files of a relay profile (the mailbox files also appear in a user's
// profile run with up --serve-mailbox).
const (
	RelayKeyFile    = "relay.key"
	RelayListenFile = "relay.listen"
	MailboxDBFile   = "mailbox.db"
	MailboxKeyFile  = "mailbox.key"
)

// DefaultRelayListen are the listen addresses of `samizdat relay` without
// --listen: loopback TCP and QUIC, like `up`; an operator opens the relay
// to others by giving --listen explicitly.
var DefaultRelayListen = []string{
	"/ip4/127.0.0.1/tcp/0",
	"/ip4/127.0.0.1/udp/0/quic-v1",
}

// ErrUserProfile is returned by StartRelay for a directory that holds a
// user's profile: a relay has no identity and never shares a directory
// with one.
var ErrUserProfile = errors.New("this directory holds a user profile: give the relay its own --profile directory, or run `samizdat up --serve-mailbox` to host mailboxes from this profile")

// MailboxOptions configure a mailbox service. The zero value uses the
// mailbox package's defaults (64 MiB per mailbox, 1 GiB in all, 30 days).
type MailboxOptions struct {
	Quotas    mailbox.Quotas    // zero fields: defaults; negative: no limit
	TTL       time.Duration     // zero: mailbox.DefaultTTL
	RateLimit mailbox.RateLimit // zero: mailbox defaults
	// MailboxRateLimit limits deposits into each mailbox (zero: mailbox
	// defaults; `samizdat bench --relay` turns it off).
	MailboxRateLimit mailbox.RateLimit
	// Trace, if set, receives every byte the service exchanges (see
	// mailbox.ServerConfig.Trace).
	Trace io.Writer
	// BlobQuotas and BlobTTL bound the files kept for offline recipients
	// (zero: mailbox.DefaultBlobMailboxQuota, DefaultBlobTotalQuota,
	// DefaultBlobTTL).
	BlobQuotas mailbox.Quotas
	BlobTTL    time.Duration
}

// MailboxService is a running /samizdat/mailbox/1 service over a durable
// store in a profile directory.
type MailboxService struct {
	srv *mailbox.Server
	st  *store.MailboxStore
}

// Close stops serving and closes the store. Everything the service
// answered "accepted" is committed.
func (m *MailboxService) Close() error {
	if m == nil || m.srv == nil {
		return nil
	}
	err := m.srv.Close()
	err = errors.Join(err, m.st.Close())
	m.srv = nil
	return err
}

// serveMailbox opens (creating them on first use) mailbox.db and its key in
// dir and serves the mailbox protocol on node.
func serveMailbox(dir string, node *p2p.Node, o MailboxOptions, log *slog.Logger) (*MailboxService, error) {
	dbPath := filepath.Join(dir, MailboxDBFile)
	_, dbErr := os.Stat(dbPath)
	key, err := loadOrCreateKey(filepath.Join(dir, MailboxKeyFile), store.KeySize, dbErr == nil)
	if err != nil {
		return nil, fmt.Errorf("mailbox key: %w", err)
	}
	st, err := store.OpenMailboxStore(dbPath, key)
	if errors.Is(err, store.ErrWrongKey) || errors.Is(err, store.ErrNotDatabase) {
		return nil, fmt.Errorf("%s cannot be opened with %s (was one of them replaced?): %w", dbPath, MailboxKeyFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open mailbox store: %w", err)
	}
	srv := mailbox.NewServer(mailbox.ServerConfig{
		Store:            st,
		Quotas:           o.Quotas,
		TTL:              o.TTL,
		RateLimit:        o.RateLimit,
		MailboxRateLimit: o.MailboxRateLimit,
		Logger:           log,
		Trace:            o.Trace,
		BlobQuotas:       o.BlobQuotas,
		BlobTTL:          o.BlobTTL,
	})
	srv.Register(node)
	return &MailboxService{srv: srv, st: st}, nil
}

// ServeMailbox makes the running node a mailbox host too (`samizdat up
// --serve-mailbox`): envelopes are kept in mailbox.db in the profile
// directory. Close the service before the node.
func (n *Node) ServeMailbox(o MailboxOptions) (*MailboxService, error) {
	log := n.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return serveMailbox(n.Dir, n.P2P, o, log.With("component", "mailbox"))
}

// RelayOptions configure StartRelay.
type RelayOptions struct {
	Dir    string
	Listen []string // nil: the ports of the last run, else DefaultRelayListen
	// Mailbox configures the mailbox service.
	Mailbox MailboxOptions
	// LoopbackOnly makes the relay refuse every non-loopback address (tests
	// set it).
	LoopbackOnly bool
	Logger       *slog.Logger
	// EnableDHT runs our DHT (server mode) and announces the mailbox
	// service in it, so users without configured hosts find this relay.
	EnableDHT bool
	// Bootstrap peers to join the DHT through.
	Bootstrap []string
	// Via are other relays (full multiaddrs ending in /p2p/<id>) on which
	// this relay keeps a circuit slot at all times, listing the relayed
	// addresses among its own: users who name this host by such an
	// address reach its mailbox service through the other relay, so this
	// host never sees their addresses (issue 14).
	Via []string
	// Transports: a relay inside reach of censored users serves secure
	// WebSocket on 443 and pluggable transports (transports.go).
	Transports TransportOptions
}

// Relay is a running volunteer relay: a libp2p node offering circuit relay
// v2 and the mailbox service.
type Relay struct {
	Dir     string
	P2P     *p2p.Node
	Mailbox *MailboxService

	log    *slog.Logger
	unlock func()
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

// StartRelay creates the relay profile if needed (directory, device key),
// takes its lock and starts the node with the relay and mailbox services.
// A second relay on the same directory fails with ErrLocked.
func StartRelay(ctx context.Context, o RelayOptions) (_ *Relay, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Dir == "" {
		return nil, errors.New("a relay needs a profile directory (--profile)")
	}
	if _, err := os.Stat(filepath.Join(o.Dir, ProfileFile)); err == nil {
		return nil, fmt.Errorf("%w (%s)", ErrUserProfile, o.Dir)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockDaemon(ctx, o.Dir)
	if err != nil {
		return nil, err
	}
	r := &Relay{Dir: o.Dir, log: log, unlock: unlock}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	priv, err := relayKey(filepath.Join(o.Dir, RelayKeyFile))
	if err != nil {
		return nil, err
	}
	listen, saved := o.Listen, false
	listenPath := filepath.Join(o.Dir, RelayListenFile)
	if listen == nil {
		listen = DefaultRelayListen
		if b, err := os.ReadFile(listenPath); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			listen, saved = strings.Fields(string(b)), true
		}
	}
	pc := p2p.Config{
		PrivateKey:         priv,
		ListenAddrs:        listen,
		EnableRelayService: true,
		EnableDHT:          o.EnableDHT,
		DHTServer:          o.EnableDHT,
		BootstrapPeers:     o.Bootstrap,
		LoopbackOnly:       o.LoopbackOnly,
		Logger:             log.With("component", "p2p"),
		// Slots on the Via relays are kept even when this relay is
		// publicly reachable: they are for its users' privacy, not its
		// own reachability.
		StaticRelays: o.Via,
		ForcePrivate: len(o.Via) > 0,
	}
	if err := o.Transports.apply(&pc, o.Dir); err != nil {
		return nil, err
	}
	if pc.TLSIdentity, err = fileTLSIdentity(o.Dir, o.Transports.TLSName, time.Now()); err != nil {
		return nil, err
	}
	if err := fileECH(&pc, o.Dir, o.Transports.ECH, o.Transports.ECHName); err != nil {
		return nil, err
	}
	r.P2P, err = p2p.New(ctx, pc)
	if err != nil && saved {
		log.Info("savedPortsUnavailable", "err", err)
		pc.ListenAddrs = DefaultRelayListen
		r.P2P, err = p2p.New(ctx, pc)
	}
	if err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	if o.Listen == nil {
		var bound []string
		for _, a := range r.P2P.Addrs() {
			if strings.Contains(a, "/p2p-circuit") {
				continue // a relay slot, not a port of ours
			}
			if i := strings.Index(a, "/p2p/"); i > 0 {
				bound = append(bound, a[:i])
			}
		}
		if err := writeFileAtomic(listenPath, []byte(strings.Join(bound, "\n")+"\n"), 0o600); err != nil {
			log.Warn("saveListenFailed", "err", err)
		}
	}
	if r.Mailbox, err = serveMailbox(o.Dir, r.P2P, o.Mailbox, log.With("component", "mailbox")); err != nil {
		return nil, err
	}
	if o.EnableDHT {
		var bctx context.Context
		bctx, r.cancel = context.WithCancel(context.Background())
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			announceMailbox(bctx, r.P2P, log.With("component", "dht"))
		}()
	}
	log.Info("relayStarted", "peer", r.P2P.PeerID()[:16], "addrs", len(r.P2P.Addrs()), "via", len(o.Via))
	return r, nil
}

// WaitVia waits (at most d, or until ctx ends) for the relay's slots on
// its Via relays and returns its relayed addresses (…/p2p/<other
// relay>/p2p-circuit/p2p/<this relay>): what users give as --mailbox-host
// to reach it without it seeing their addresses.
func (r *Relay) WaitVia(ctx context.Context, d time.Duration) []string {
	deadline := time.Now().Add(d)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		var out []string
		for _, a := range r.Addrs() {
			if strings.Contains(a, "/p2p-circuit/") {
				out = append(out, a)
			}
		}
		if len(out) > 0 || time.Now().After(deadline) {
			return out
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// PeerID is the relay's (stable) peer id.
func (r *Relay) PeerID() string { return r.P2P.PeerID() }

// Addrs are the relay's full listen multiaddrs (ending in /p2p/<id>), what
// users give others as --bootstrap or mailbox host.
func (r *Relay) Addrs() []string { return r.P2P.Addrs() }

// Close stops the mailbox service, the node, and releases the lock.
func (r *Relay) Close() error {
	var errs []error
	if r.cancel != nil {
		r.cancel()
		r.bg.Wait()
		r.cancel = nil
	}
	if r.Mailbox != nil {
		errs = append(errs, r.Mailbox.Close())
		r.Mailbox = nil
	}
	if r.P2P != nil {
		errs = append(errs, r.P2P.Close())
		r.P2P = nil
	}
	if r.unlock != nil {
		r.unlock()
		r.unlock = nil
	}
	return errors.Join(errs...)
}

// anonOpener opens each stream over a throwaway transport identity, to the
// addresses the node knows for the peer (p2p.Node.OpenEphemeral): the mesh
// hands carried envelopes to mailbox hosts with it, so a host does not
// learn which device carried what (issue 14).
type anonOpener struct{ n *p2p.Node }

func (a anonOpener) OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error) {
	return a.n.OpenEphemeral(ctx, peerID, nil, protocol)
}

// relayKey loads the relay's libp2p key from path, creating it on first
// run.
func relayKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		priv, _, err := p2p.GenerateKey()
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, []byte(hex.EncodeToString(priv)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("save relay key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read relay key: %w", err)
	}
	priv, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err == nil {
		_, err = p2p.PeerIDFromKey(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("the relay key file %s is damaged: %w", path, err)
	}
	return priv, nil
}

// loadOrCreateKey reads a hex key of size bytes from path or, when the file
// does not exist and mustExist is false, creates a random one (0600).
func loadOrCreateKey(path string, size int, mustExist bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !mustExist {
		key := make([]byte, size)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, err
		}
		return key, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing, but the database it opens exists", path)
	}
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != size {
		return nil, fmt.Errorf("%s is damaged", path)
	}
	return key, nil
}

// MailboxPlaintext returns what the operator of a mailbox host reads in
// its mailbox.db with the host's own key (mailbox.key in dir): the
// decrypted database and WAL, live rows and freed pages alike, and the
// number of envelopes the host holds, opened as the host opens it. Tests
// scan it for what must never reach a host (plaintext, account ids):
// scanning the encrypted file would find nothing whatever it held. Run it
// while no process serves from dir.
func MailboxPlaintext(dir string) (plain []byte, envelopes int64, err error) {
	key, err := loadOrCreateKey(filepath.Join(dir, MailboxKeyFile), store.KeySize, true)
	if err != nil {
		return nil, 0, err
	}
	db := filepath.Join(dir, MailboxDBFile)
	for _, f := range []string{db, db + "-wal"} {
		b, err := store.DecryptFile(f, key)
		if errors.Is(err, os.ErrNotExist) && f != db {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		plain = append(plain, b...)
	}
	st, err := store.OpenMailboxStore(db, key)
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	_, envelopes, err = st.TotalUsage(context.Background())
	return plain, envelopes, err
}
