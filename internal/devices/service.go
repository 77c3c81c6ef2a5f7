package devices

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Transport is what linking needs from the network (*p2p.Node has it).
type Transport interface {
	Handle(protocol string, h func(s p2p.Stream))
	Unhandle(protocol string)
	OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error)
	AddAddrs(peerID string, addrs []string)
	PeerID() string
}

// Account is what linking needs from the messenger: the account to hand
// over, this device's certified entry, and a way to re-sign the card when
// the device list changed.
type Account interface {
	Identity() keys.PublicIdentity
	LinkProvision(ctx context.Context) (*wirepb.LinkProvision, error)
	OwnDevice(ctx context.Context) (identity.Device, error)
	DevicesChanged(ctx context.Context) error
}

// Config configures a Service.
type Config struct {
	Store     *store.Store
	Transport Transport
	Account   Account
	Logger    *slog.Logger     // nil: discard
	Now       func() time.Time // nil: time.Now
	Rand      io.Reader        // nil: crypto/rand
	// ConfirmTimeout bounds how long a started link waits for its user to
	// compare the codes (default 5 minutes).
	ConfirmTimeout time.Duration
}

// Errors of Service.
var (
	// ErrNoPending is returned by Confirm for an unknown or timed-out link.
	ErrNoPending = errors.New("no link waiting for confirmation (timed out? start again)")
	// ErrNewDeviceUnreachable is returned by Start when the new device
	// cannot be dialled: it no longer waits (linked already: a code works
	// once; stopped; expired), or it is on another network.
	// ErrLinkBurnt is returned by NewDevice.Await when attempts with a
	// wrong proof of the secret burnt the code. It matches ErrLinkAuth.
	ErrLinkBurnt = fmt.Errorf("%w: three attempts failed, so this code no longer works: show a new one (samizdat link)", ErrLinkAuth)
	// ErrLinkCancelled is returned by Confirm when this device's user did
	// not confirm the codes: the new device was given nothing.
	ErrLinkCancelled        = errors.New("linking cancelled: the codes were not confirmed, nothing was sent to the new device")
	ErrNewDeviceUnreachable = errors.New("cannot reach the new device: is samizdat link still waiting there, on a network this device reaches? (a link code works once)")
)

// Service is an existing device's side of linking, and the device list.
type Service struct {
	cfg     Config
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string]*pendingAccept
}

type pendingAccept struct {
	s     p2p.Stream
	sess  *Session
	timer *time.Timer
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 5 * time.Minute
	}
	return &Service{cfg: cfg, log: cfg.Logger, pending: map[string]*pendingAccept{}}
}

// Started is a link waiting for its user to compare the codes.
type Started struct {
	ID     string `json:"id"`
	Code   string `json:"code"`
	Device string `json:"device"` // the new device's peer id
}

// Start reads a link code shown by a new device, dials it and runs the key
// exchange; the codes shown on both devices must then be compared, and
// Confirm called.
func (s *Service) Start(ctx context.Context, code string) (Started, error) {
	if s.cfg.Transport == nil {
		return Started{}, errors.New("linking needs the network: run samizdat up")
	}
	l, err := ParseLink(code, s.cfg.Now())
	if err != nil {
		return Started{}, err
	}
	peer := identity.DevicePeerID(l.DeviceKey)
	if peer == s.cfg.Transport.PeerID() {
		return Started{}, fmt.Errorf("%w: it is this device's own code", ErrBadLink)
	}
	s.cfg.Transport.AddAddrs(peer, l.Addrs)
	st, err := s.cfg.Transport.OpenStream(ctx, peer, ProtocolLink)
	if err != nil {
		s.log.Info("linkUnreachable", "device", short(peer), "err", err)
		return Started{}, fmt.Errorf("%w: %w", ErrNewDeviceUnreachable, err)
	}
	_ = st.SetDeadline(time.Now().Add(s.cfg.ConfirmTimeout + time.Minute))
	sess, err := Begin(s.cfg.Rand, st, l, s.cfg.Transport.PeerID())
	if err != nil {
		_ = st.Reset()
		s.log.Info("linkRefused", "device", short(peer), "err", err)
		return Started{}, err
	}
	idb := make([]byte, 8)
	if _, err := io.ReadFull(s.cfg.Rand, idb); err != nil {
		_ = st.Reset()
		return Started{}, err
	}
	id := hex.EncodeToString(idb)
	p := &pendingAccept{s: st, sess: sess}
	p.timer = time.AfterFunc(s.cfg.ConfirmTimeout, func() { s.take(id); _ = st.Reset() })
	s.mu.Lock()
	s.pending[id] = p
	s.mu.Unlock()
	return Started{ID: id, Code: sess.Code(), Device: peer}, nil
}

func (s *Service) take(id string) *pendingAccept {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[id]
	delete(s.pending, id)
	if p != nil {
		p.timer.Stop()
	}
	return p
}

// Confirm finishes (ok: the user saw the same code on both devices) or
// abandons a started link. Finishing gives the new device the account,
// adds it to the device list under a new version and re-signs the card;
// the chat history follows (ConfirmWith says no to it).
func (s *Service) Confirm(ctx context.Context, id string, ok bool) (Info, error) {
	return s.ConfirmWith(ctx, id, ok, ConfirmOptions{})
}

func (s *Service) confirm(ctx context.Context, id string, ok bool) (Info, error) {
	p := s.take(id)
	if p == nil {
		return Info{}, ErrNoPending
	}
	if !ok {
		_ = p.s.Reset()
		return Info{}, ErrLinkCancelled
	}
	defer p.s.Close()
	prov, err := s.cfg.Account.LinkProvision(ctx)
	if err != nil {
		_ = p.s.Reset()
		return Info{}, err
	}
	dev, err := p.sess.Provision(prov, s.cfg.Account.Identity())
	if err != nil {
		_ = p.s.Reset()
		return Info{}, err
	}
	self, err := s.cfg.Account.OwnDevice(ctx)
	if err != nil {
		_ = p.s.Reset()
		return Info{}, err
	}
	var list *List
	now := s.cfg.Now()
	err = s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		if list, err = Load(tx); err != nil {
			return err
		}
		list.Ensure(self, now)
		if err := list.Add(dev, now); err != nil {
			return err
		}
		return Save(tx, list)
	})
	if err != nil {
		_ = p.s.Reset()
		return Info{}, err
	}
	if err := s.cfg.Account.DevicesChanged(ctx); err != nil {
		s.log.Warn("cardNotResigned", "err", err)
	}
	if err := p.sess.Finish(list.Version, list.Active()); err != nil {
		// The new device may not have heard: it is listed all the same and
		// can be revoked (samizdat devices revoke).
		s.log.Info("linkFinishLost", "device", short(dev.PeerID), "err", err)
	}
	s.log.Info("deviceLinked", "device", short(dev.PeerID), "version", list.Version)
	e := list.Find(dev.PeerID)
	return s.info(e, self.PeerID), nil
}

// Info is one device as listed to users and the API.
type Info struct {
	ID        string    `json:"id"` // peer id
	Name      string    `json:"name"`
	This      bool      `json:"this"`
	AddedAt   time.Time `json:"addedAt"`
	LastSeen  time.Time `json:"lastSeen,omitzero"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}

func (s *Service) info(e *Entry, self string) Info {
	return Info{ID: e.Device.PeerID, Name: e.Device.Name, This: e.Device.PeerID == self, AddedAt: e.AddedAt,
		LastSeen: e.LastSeen, Revoked: e.Revoked(), RevokedAt: e.RevokedAt}
}

// Devices lists the account's devices (this one first when the list is
// empty: an account never linked is one device) and the list's version.
func (s *Service) Devices(ctx context.Context) ([]Info, uint64, error) {
	self, err := s.cfg.Account.OwnDevice(ctx)
	if err != nil {
		return nil, 0, err
	}
	var list *List
	if err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) { list, err = Load(tx); return err }); err != nil {
		return nil, 0, err
	}
	list.Ensure(self, s.cfg.Now()) // not saved: this device is seen now
	out := make([]Info, 0, len(list.Entries))
	for i := range list.Entries {
		out = append(out, s.info(&list.Entries[i], self.PeerID))
	}
	return out, list.Version, nil
}

// Revoke revokes a device (by peer id, or an unambiguous prefix or suffix
// of 6 characters or more): the card is re-signed without it under a new
// version, which contacts hold against it from then on.
func (s *Service) Revoke(ctx context.Context, ref string) (Info, error) {
	self, err := s.cfg.Account.OwnDevice(ctx)
	if err != nil {
		return Info{}, err
	}
	var e *Entry
	err = s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		list, err := Load(tx)
		if err != nil {
			return err
		}
		list.Ensure(self, s.cfg.Now())
		if e, err = list.Revoke(ref, self.PeerID, s.cfg.Now()); err != nil {
			return err
		}
		return Save(tx, list)
	})
	if err != nil {
		return Info{}, err
	}
	if err := s.cfg.Account.DevicesChanged(ctx); err != nil {
		return Info{}, err
	}
	s.log.Info("deviceRevoked", "device", short(e.Device.PeerID))
	return s.info(e, self.PeerID), nil
}

func short(p string) string {
	if len(p) > 8 {
		return p[len(p)-8:]
	}
	return p
}

// Linked is what a new device received by linking.
type Linked struct {
	Identity  *keys.Identity
	Provision *wirepb.LinkProvision
	List      *List
	Device    identity.Device
}

// NewDevice is the new device's side: it serves ProtocolLink for one
// pending link code until an existing device of some account links it.
type NewDevice struct {
	Transport Transport
	Link      *PendingLink
	// DeviceKey certifies this device for the account it is given
	// (identity.NewDevice), with these addresses and name.
	DeviceKey ed25519.PublicKey
	Sign      func([]byte) ([]byte, error)
	Addrs     []string
	Name      string
	// Confirm shows the code to the user and reports whether it matches
	// the code on the existing device.
	Confirm func(code string) bool
	Logger  *slog.Logger
	Now     func() time.Time
}

// Await serves the link code until it is used or ctx ends.
func (n *NewDevice) Await(ctx context.Context) (*Linked, error) {
	if n.Logger == nil {
		n.Logger = slog.New(slog.DiscardHandler)
	}
	if n.Now == nil {
		n.Now = time.Now
	}
	type result struct {
		l   *Linked
		err error
	}
	res := make(chan result, 1)
	n.Transport.Handle(ProtocolLink, func(st p2p.Stream) {
		l, claimed, err := n.serve(st)
		if err != nil {
			_ = st.Reset()
			n.Logger.Info("linkAttemptFailed", "peer", short(st.RemotePeer()), "err", err)
			// An attempt that did not take the code (a bad proof, or the
			// code already taken by an exchange still running) is refused
			// alone: the wait goes on, for the real device or for the
			// exchange in progress, which reports itself. Only the bad
			// proof that burns the code ends it.
			if !claimed && !(errors.Is(err, ErrLinkAuth) && n.Link.burntByProofs()) {
				return
			}
			if !claimed {
				err = ErrLinkBurnt
			}
		} else {
			_ = st.Close()
		}
		select {
		case res <- result{l, err}:
		default:
		}
	})
	defer n.Transport.Unhandle(ProtocolLink)
	wait := time.Until(n.Link.Expires)
	if n.Now().After(n.Link.Expires) {
		wait = 0
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-res:
		return r.l, r.err
	case <-t.C:
		return nil, ErrLinkExpired
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serve runs one attempt; claimed reports whether it took the code (its
// proof was good), after which the code serves no one else.
func (n *NewDevice) serve(st p2p.Stream) (_ *Linked, claimed bool, _ error) {
	_ = st.SetDeadline(time.Now().Add(10 * time.Minute))
	sess, err := n.Link.Answer(st, st.RemotePeer())
	if err != nil {
		return nil, false, err
	}
	// The code is shown at once, while the existing device's user
	// compares it too; what that device then sends is read after.
	if !n.Confirm(sess.Code()) {
		return nil, true, ErrLinkRefused
	}
	id, prov, err := sess.Receive()
	if err != nil {
		return nil, true, err
	}
	dev, err := identity.NewDevice(id.Public(), n.DeviceKey, n.Addrs, n.Sign)
	if err != nil {
		return nil, true, err
	}
	dev.Name = n.Name
	version, devs, err := sess.Accept(id.Public(), dev)
	if err != nil {
		return nil, true, err
	}
	list := &List{}
	list.Adopt(version, devs, n.Now())
	return &Linked{Identity: id, Provision: prov, List: list, Device: dev}, true, nil
}
