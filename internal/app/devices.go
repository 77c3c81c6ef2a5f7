package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// devicesAPI adapts devices.Service to the API (api.DevicesBackend), with
// the history transfers the messenger keeps (h; nil: none).
type devicesAPI struct {
	s *devices.Service
	h *messenger.Messenger
}

// revocation is this device's removal from its account, or nil.
func revocation(m *messenger.Messenger) *apiclient.Revocation {
	r := m.Revoked()
	if r == nil {
		return nil
	}
	return &apiclient.Revocation{At: r.At, By: r.By, ByName: r.ByName}
}

func toAPIDevice(d devices.Info) apiclient.Device {
	return apiclient.Device{ID: d.ID, Name: d.Name, This: d.This, AddedAt: d.AddedAt, LastSeen: d.LastSeen, Revoked: d.Revoked, RevokedAt: d.RevokedAt}
}

func (a devicesAPI) Devices(ctx context.Context) (apiclient.Devices, error) {
	ds, v, err := a.s.Devices(ctx)
	out := apiclient.Devices{Version: v, Devices: []apiclient.Device{}}
	if a.h != nil {
		out.Revoked = revocation(a.h)
	}
	var hs []messenger.HistoryTransfer
	if a.h != nil && err == nil {
		hs, _ = a.h.History(ctx)
	}
	for _, d := range ds {
		ad := toAPIDevice(d)
		for _, h := range hs {
			if h.Device == d.ID {
				ad.History = &apiclient.HistoryTransfer{ID: h.ID, Incoming: h.Incoming, State: h.State, Messages: h.Messages,
					Imported: h.Imported, Bytes: h.Bytes, ChunksDone: h.Done, ChunksTotal: h.Total, Error: h.Error}
			}
		}
		out.Devices = append(out.Devices, ad)
	}
	return out, err
}

// removed refuses to link or revoke on a device that was itself removed
// from the account (messenger.ErrDeviceRevoked: 403 device_revoked).
func (a devicesAPI) removed() error {
	if a.h != nil && a.h.Revoked() != nil {
		return messenger.ErrDeviceRevoked
	}
	return nil
}

func (a devicesAPI) StartLink(ctx context.Context, link string) (apiclient.LinkStarted, error) {
	if err := a.removed(); err != nil {
		return apiclient.LinkStarted{}, err
	}
	st, err := a.s.Start(ctx, link)
	return apiclient.LinkStarted{ID: st.ID, Code: st.Code, Device: st.Device}, err
}

func (a devicesAPI) ConfirmLink(ctx context.Context, id string, accept bool) (apiclient.Device, error) {
	d, err := a.s.Confirm(ctx, id, accept)
	return toAPIDevice(d), err
}

func (a devicesAPI) ConfirmLinkHistory(ctx context.Context, id string, accept, history bool) (apiclient.Device, error) {
	d, err := a.s.ConfirmWith(ctx, id, accept, devices.ConfirmOptions{NoHistory: !history})
	return toAPIDevice(d), err
}

func (a devicesAPI) RevokeDevice(ctx context.Context, id string) (apiclient.Device, error) {
	if err := a.removed(); err != nil {
		return apiclient.Device{}, err
	}
	d, err := a.s.Revoke(ctx, id)
	return toAPIDevice(d), err
}

// LinkOptions configure LinkDevice.
type LinkOptions struct {
	Dir        string
	Keys       KeySource
	DeviceName string   // what this device is called in the device list
	Listen     []string // nil: DefaultListen
	// LoopbackOnly makes the node refuse every non-loopback address.
	LoopbackOnly bool
	TTL          time.Duration // how long the code is valid (0: devices.DefaultLinkTTL)
	Logger       *slog.Logger
	// Show is called with the link code once the node listens.
	Show func(link string)
	// Confirm shows the short code and reports whether the user saw the
	// same on the existing device.
	Confirm func(code string) bool
	// NoHistory makes the device refuse the chat history the existing
	// device offers (it gets the account, contacts and groups only).
	NoHistory bool
}

// LinkDevice makes a new profile a new device of an existing account: it
// shows a link code, waits for an existing device to use it (samizdat link
// accept), and installs the account it is given. The profile is complete
// (profile.json written) only when linking succeeded; it returns the
// account id.
func LinkDevice(ctx context.Context, o LinkOptions) (string, error) {
	name := strings.TrimSpace(o.DeviceName)
	if name == "" {
		name, _ = os.Hostname()
	}
	if len(name) > 100 || strings.ContainsAny(name, "\n\r\t") {
		return "", errors.New("the device name must be one line of at most 100 bytes")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, meta, unlock, err := createStore(o.Dir, o.Keys)
	if err != nil {
		return "", err
	}
	defer unlock()
	defer st.Close()
	priv, _, err := p2p.GenerateKey()
	if err != nil {
		return "", err
	}
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobP2PKey, priv) }); err != nil {
		return "", err
	}
	listen := o.Listen
	if listen == nil {
		listen = DefaultListen
	}
	node, err := p2p.New(ctx, p2p.Config{PrivateKey: priv, ListenAddrs: listen, LoopbackOnly: o.LoopbackOnly, Logger: log.With("component", "p2p")})
	if err != nil {
		return "", fmt.Errorf("start network: %w", err)
	}
	defer node.Close()
	var addrs []string
	for _, a := range node.Addrs() {
		if i := strings.LastIndex(a, "/p2p/"); i > 0 {
			a = a[:i]
		}
		addrs = append(addrs, a)
	}
	ttl := o.TTL
	if ttl <= 0 {
		ttl = devices.DefaultLinkTTL
	}
	pending, err := devices.NewLink(nil, node.DeviceKey(), addrs, time.Now(), ttl)
	if err != nil {
		return "", err
	}
	if o.Show != nil {
		o.Show(pending.String())
	}
	nd := &devices.NewDevice{Transport: node, Link: pending, DeviceKey: node.DeviceKey(), Sign: node.SignDevice,
		Addrs: addrs, Name: name, Confirm: o.Confirm, Logger: log.With("component", "devices")}
	linked, err := nd.Await(ctx)
	if err != nil {
		return "", err
	}
	skipped, err := messenger.InstallLinked(ctx, st, linked.Identity, linked.Provision, linked.List, nil)
	if err != nil {
		return "", err
	}
	if skipped > 0 {
		log.Info("linkedContactsSkipped", "count", skipped)
	}
	if err := writeProfileMeta(o.Dir, meta); err != nil {
		return "", err
	}
	m, err := messenger.New(ctx, messenger.Config{Store: st})
	if err != nil {
		return "", err
	}
	defer m.Close()
	if o.NoHistory {
		if err := m.SetHistoryRefused(ctx, true); err != nil {
			return "", err
		}
	}
	return m.AccountID(), nil
}

// setupLinker runs LinkDevice for the web app of a node waiting without a
// profile (api.SetupLinker): the page shows the link code and its QR
// image, then the short code to compare; once linked the node starts.
type setupLinker struct {
	o       Options
	claim   func() bool                               // takes the profile for linking (not while init runs)
	release func()                                    // gives it back after a failure
	start   func(KeySource) (apiclient.Status, error) // starts the node on the linked profile
	mu      sync.Mutex
	st      apiclient.SetupLink
	running bool
	confirm chan bool
}

func (l *setupLinker) State() apiclient.SetupLink {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

func (l *setupLinker) set(f func(st *apiclient.SetupLink)) {
	l.mu.Lock()
	f(&l.st)
	l.mu.Unlock()
}

func (l *setupLinker) Start(ctx context.Context, req apiclient.SetupLinkRequest) (apiclient.SetupLink, error) {
	if (req.Passphrase != "") == req.NoPassphrase {
		return apiclient.SetupLink{}, errors.New("choose either a passphrase or no passphrase")
	}
	l.mu.Lock()
	if l.running {
		st := l.st
		l.mu.Unlock()
		return st, nil
	}
	if !l.claim() {
		l.mu.Unlock()
		return apiclient.SetupLink{}, ErrProfileExists
	}
	l.running, l.st, l.confirm = true, apiclient.SetupLink{State: apiclient.LinkWaiting}, make(chan bool, 1)
	confirm := l.confirm
	l.mu.Unlock()
	shown, failed := make(chan struct{}), make(chan struct{})
	ks := KeySource{Passphrase: req.Passphrase, NoPassphrase: req.NoPassphrase}
	go func() {
		_, err := LinkDevice(context.Background(), LinkOptions{
			Dir: l.o.Dir, Keys: ks, DeviceName: req.DeviceName, Listen: l.o.Listen, LoopbackOnly: l.o.LoopbackOnly, Logger: l.o.Logger,
			NoHistory: req.NoHistory,
			Show: func(link string) {
				qr := ""
				if png, err := identity.QRPNG(strings.ToUpper(link), 320); err == nil {
					qr = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
				}
				l.set(func(st *apiclient.SetupLink) { st.Link, st.QR = link, qr })
				close(shown)
			},
			Confirm: func(code string) bool {
				l.set(func(st *apiclient.SetupLink) { st.State, st.Code = apiclient.LinkCompare, code })
				ok := <-confirm
				if ok {
					l.set(func(st *apiclient.SetupLink) { st.State = apiclient.LinkLinking })
				}
				return ok
			},
		})
		if err == nil {
			_, err = l.start(KeySource{Passphrase: req.Passphrase})
		}
		l.mu.Lock()
		if err != nil {
			l.st = apiclient.SetupLink{State: apiclient.LinkFailed, Error: err.Error()}
			l.release()
		} else {
			l.st.State = apiclient.LinkDone
		}
		l.running = false
		l.mu.Unlock()
		close(failed)
	}()
	select {
	case <-shown:
	case <-failed:
	case <-ctx.Done():
	}
	return l.State(), nil
}

func (l *setupLinker) Confirm(_ context.Context, accept bool) (apiclient.SetupLink, error) {
	l.mu.Lock()
	if l.st.State != apiclient.LinkCompare {
		st := l.st
		l.mu.Unlock()
		return st, errors.New("no code to compare yet")
	}
	select {
	case l.confirm <- accept:
	default:
	}
	l.mu.Unlock()
	return l.State(), nil
}
