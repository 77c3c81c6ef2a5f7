package devices

// Bad input of issue 17 at linking, over real libp2p nodes on loopback:
// each refused with a clear error, nothing stored, no secret in the logs.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// logBuf is a log sink safe for the nodes' goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fakeAccount is the messenger's side of an existing device.
type fakeAccount struct {
	id      *keys.Identity
	self    identity.Device
	changed atomic.Int32
}

func (a *fakeAccount) Identity() keys.PublicIdentity { return a.id.Public() }
func (a *fakeAccount) LinkProvision(context.Context) (*wirepb.LinkProvision, error) {
	return &wirepb.LinkProvision{Identity: a.id.Marshal(), Name: "alice"}, nil
}
func (a *fakeAccount) OwnDevice(context.Context) (identity.Device, error) { return a.self, nil }
func (a *fakeAccount) DevicesChanged(context.Context) error               { a.changed.Add(1); return nil }

func newP2P(t *testing.T) *p2p.Node {
	t.Helper()
	n, err := p2p.New(context.Background(), p2p.Config{LoopbackOnly: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func addrsOf(n *p2p.Node) []string {
	var out []string
	for _, a := range n.Addrs() {
		if i := strings.LastIndex(a, "/p2p/"); i > 0 {
			a = a[:i]
		}
		out = append(out, a)
	}
	return out
}

// existingDevice is a device of an account (its own account when id is
// nil) with a Service, its store and its log.
type existingDevice struct {
	svc  *Service
	st   *store.Store
	acct *fakeAccount
	log  *logBuf
}

func newExisting(t *testing.T, id *keys.Identity) *existingDevice {
	t.Helper()
	if id == nil {
		id, _ = keys.GenerateIdentity(rand.Reader)
	}
	n := newP2P(t)
	key := make([]byte, store.KeySize)
	rand.Read(key)
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	self, err := identity.NewDevice(id.Public(), n.DeviceKey(), addrsOf(n), n.SignDevice)
	if err != nil {
		t.Fatal(err)
	}
	d := &existingDevice{st: st, acct: &fakeAccount{id: id, self: self}, log: &logBuf{}}
	d.svc = New(Config{Store: st, Transport: n, Account: d.acct,
		Logger: slog.New(slog.NewTextHandler(d.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return d
}

func (d *existingDevice) list(t *testing.T) *List {
	t.Helper()
	var l *List
	if err := d.st.View(context.Background(), func(tx *store.Tx) (err error) { l, err = Load(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitingDevice is a new device serving a link code (samizdat link).
type waitingDevice struct {
	pending *PendingLink
	codes   chan string // the short codes it shows
	answer  chan bool   // its user's answer to each
	done    chan awaitResult
	log     *logBuf
}

type awaitResult struct {
	l   *Linked
	err error
}

func newWaiting(t *testing.T, now time.Time) *waitingDevice {
	t.Helper()
	n := newP2P(t)
	p, err := NewLink(nil, n.DeviceKey(), addrsOf(n), now, DefaultLinkTTL)
	if err != nil {
		t.Fatal(err)
	}
	w := &waitingDevice{pending: p, codes: make(chan string, 4), answer: make(chan bool, 4), done: make(chan awaitResult, 1), log: &logBuf{}}
	nd := &NewDevice{Transport: n, Link: p, DeviceKey: n.DeviceKey(), Sign: n.SignDevice, Addrs: addrsOf(n), Name: "phone",
		Confirm: func(code string) bool { w.codes <- code; return <-w.answer },
		Logger:  slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		l, err := nd.Await(ctx)
		w.done <- awaitResult{l, err}
	}()
	return w
}

// noSecrets fails if a log holds the link code, its one-time secret (in
// any usual encoding) or a short code.
func noSecrets(t *testing.T, logs map[string]string, p *PendingLink, shortCodes ...string) {
	t.Helper()
	code := p.String()
	needles := []string{code[len(LinkScheme):], strings.ToUpper(code[len(LinkScheme):]), hex.EncodeToString(p.Secret),
		base64.StdEncoding.EncodeToString(p.Secret), base64.RawURLEncoding.EncodeToString(p.Secret),
		base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(p.Secret)}
	for _, c := range shortCodes {
		needles = append(needles, c, strings.ReplaceAll(c, " ", ""))
	}
	for name, l := range logs {
		for _, n := range needles {
			if n != "" && strings.Contains(strings.ToLower(l), strings.ToLower(n)) {
				t.Errorf("the %s log holds a secret (%q):\n%s", name, n, l)
			}
		}
	}
}

// TestServiceLinkBadInput: the existing device's service refuses a
// tampered, stale or forged code with the documented errors, before
// anything is stored; three forged proofs burn the new device's code,
// which then ends its wait.
func TestServiceLinkBadInput(t *testing.T) {
	ctx := context.Background()
	alice := newExisting(t, nil)
	w := newWaiting(t, time.Now())
	code := w.pending.String()

	i := len(LinkScheme) + 12
	tampered := code[:i] + string("ab"[boolInt(code[i] == 'a')]) + code[i+1:]
	if _, err := alice.svc.Start(ctx, tampered); !errors.Is(err, ErrBadLink) {
		t.Fatalf("tampered code: %v", err)
	}
	stale := w.pending.Link
	stale.Expires = time.Now().Add(-time.Minute).Truncate(time.Second)
	if _, err := alice.svc.Start(ctx, stale.String()); !errors.Is(err, ErrLinkExpired) {
		t.Fatalf("stale code: %v", err)
	}
	// A code re-made around the device with another secret (its checksum
	// is right): the new device refuses the proof, three times, and then
	// the code is burnt.
	forged := w.pending.Link
	forged.Secret = bytes.Repeat([]byte{7}, SecretSize)
	for range maxBadAttempts {
		if _, err := alice.svc.Start(ctx, forged.String()); !errors.Is(err, ErrLinkCodeRefused) || !errors.Is(err, ErrLinkRefused) {
			t.Fatalf("forged secret: %v", err)
		}
	}
	r := <-w.done
	if !errors.Is(r.err, ErrLinkBurnt) || !errors.Is(r.err, ErrLinkAuth) {
		t.Fatalf("the new device ended with %v, want ErrLinkBurnt", r.err)
	}
	// The real code now: burnt.
	if _, err := alice.svc.Start(ctx, code); err == nil {
		t.Fatal("a burnt code was taken")
	}
	if l := alice.list(t); l.Version != 0 || len(l.Entries) != 0 || alice.acct.changed.Load() != 0 {
		t.Fatalf("alice stored %+v after refusals (card re-signed %d times)", l, alice.acct.changed.Load())
	}
	noSecrets(t, map[string]string{"existing device": alice.log.String(), "new device": w.log.String()}, w.pending)
}

// TestServiceLinkSecondAttempt: while alice's link runs (the users are
// comparing the codes), someone else who holds the code — here bob, of
// another account — tries it: bob is refused with a clear error, alice's
// link is not disturbed, and bob stores nothing. Once linked, the code
// again finds nobody waiting.
func TestServiceLinkSecondAttempt(t *testing.T) {
	ctx := context.Background()
	alice, bob := newExisting(t, nil), newExisting(t, nil)
	w := newWaiting(t, time.Now())
	code := w.pending.String()
	st, err := alice.svc.Start(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	shown := <-w.codes
	if shown != st.Code {
		t.Fatalf("codes differ: %q and %q", shown, st.Code)
	}
	if _, err := bob.svc.Start(ctx, code); !errors.Is(err, ErrLinkCodeRefused) {
		t.Fatalf("a second use while the first runs: %v", err)
	}
	w.answer <- true
	info, err := alice.svc.Confirm(ctx, st.ID, true)
	if err != nil || info.Name != "phone" {
		t.Fatalf("alice's link after bob's attempt: %+v %v", info, err)
	}
	r := <-w.done
	if r.err != nil || !r.l.Identity.Public().Equal(alice.acct.id.Public()) {
		t.Fatalf("the new device: %v", r.err)
	}
	if l := alice.list(t); l.Version != 1 || len(l.Active()) != 2 {
		t.Fatalf("alice's list: %+v", l)
	}
	if l := bob.list(t); l.Version != 0 || len(l.Entries) != 0 || bob.acct.changed.Load() != 0 {
		t.Fatalf("bob stored %+v", l)
	}
	// (Here the new device's node still runs without serving the code;
	// after samizdat link it is gone: ErrNewDeviceUnreachable.)
	if _, err := bob.svc.Start(ctx, code); !errors.Is(err, ErrLinkCodeRefused) && !errors.Is(err, ErrNewDeviceUnreachable) {
		t.Fatalf("the code after linking: %v", err)
	}
	noSecrets(t, map[string]string{"alice": alice.log.String(), "bob": bob.log.String(), "new device": w.log.String()}, w.pending, st.Code)
}

// TestServiceLinkRefusedCodes: the new device's user sees another code
// and says no: alice's Confirm fails with ErrLinkRefused, nothing stored.
func TestServiceLinkRefusedCodes(t *testing.T) {
	ctx := context.Background()
	alice := newExisting(t, nil)
	w := newWaiting(t, time.Now())
	st, err := alice.svc.Start(ctx, w.pending.String())
	if err != nil {
		t.Fatal(err)
	}
	<-w.codes
	w.answer <- false
	if r := <-w.done; !errors.Is(r.err, ErrLinkRefused) {
		t.Fatalf("the new device: %v", r.err)
	}
	if _, err := alice.svc.Confirm(ctx, st.ID, true); !errors.Is(err, ErrLinkRefused) {
		t.Fatalf("alice's confirm: %v", err)
	}
	if l := alice.list(t); len(l.Entries) != 0 || alice.acct.changed.Load() != 0 {
		t.Fatalf("alice stored %+v", l)
	}
	if _, err := alice.svc.Confirm(ctx, st.ID, true); !errors.Is(err, ErrNoPending) {
		t.Fatalf("confirm again: %v", err)
	}
	// Alice's user says no: the new device is refused, given nothing.
	w = newWaiting(t, time.Now())
	if st, err = alice.svc.Start(ctx, w.pending.String()); err != nil {
		t.Fatal(err)
	}
	<-w.codes
	if _, err := alice.svc.Confirm(ctx, st.ID, false); !errors.Is(err, ErrLinkCancelled) {
		t.Fatalf("alice says no: %v", err)
	}
	w.answer <- true
	if r := <-w.done; !errors.Is(r.err, ErrLinkRefused) || r.l != nil {
		t.Fatalf("the new device after alice said no: %+v %v", r.l, r.err)
	}
	if l := alice.list(t); len(l.Entries) != 0 || alice.acct.changed.Load() != 0 {
		t.Fatalf("alice stored %+v", l)
	}
}

// TestLinkCertifiedForAnotherAccount: a new device that certifies its key
// for another account than the one it was given, or an existing device
// that hands over a device list certified for another account: refused on
// the side that checks (ErrWrongDevice, identity.ErrBadDevice).
func TestLinkCertifiedForAnotherAccount(t *testing.T) {
	account, _ := keys.GenerateIdentity(rand.Reader)
	other, _ := keys.GenerateIdentity(rand.Reader)
	existing, newDev := newTestDevice(t), newTestDevice(t)

	run := func(certFor, listFor *keys.Identity) (errNew, errOld error) {
		p, _ := NewLink(rand.Reader, newDev.pub, nil, now, DefaultLinkTTL)
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		done := make(chan error, 1)
		go func() {
			s, err := p.Answer(b, existing.peer)
			if err == nil {
				_, _, err = s.Receive()
			}
			if err == nil {
				_, _, err = s.Accept(account.Public(), newDev.cert(t, certFor.Public(), "phone"))
			}
			b.Close()
			done <- err
		}()
		l, _ := ParseLink(p.String(), now)
		s, err := Begin(rand.Reader, a, l, existing.peer)
		var added identity.Device
		if err == nil {
			added, err = s.Provision(&wirepb.LinkProvision{Identity: account.Marshal()}, account.Public())
		}
		if err == nil {
			// A list whose devices are certified for listFor.
			added = newDev.cert(t, listFor.Public(), "phone")
			err = s.Finish(2, []identity.Device{existing.cert(t, listFor.Public(), "laptop"), added})
		}
		a.Close()
		return <-done, err
	}
	if _, errOld := run(other, account); !errors.Is(errOld, ErrWrongDevice) || !errors.Is(errOld, identity.ErrBadDevice) {
		t.Fatalf("a certificate for another account: %v", errOld)
	}
	if errNew, errOld := run(account, other); !errors.Is(errNew, identity.ErrBadDevice) || errOld != nil {
		t.Fatalf("a device list of another account: new %v, existing %v", errNew, errOld)
	}
}

// TestServiceLinkExpiredWhileWaiting: a new device whose code expires
// stops waiting with ErrLinkExpired; the code is then refused by the
// existing device before any dial.
func TestServiceLinkExpiredWhileWaiting(t *testing.T) {
	alice := newExisting(t, nil)
	w := newWaiting(t, time.Now().Add(-DefaultLinkTTL-time.Second))
	if r := <-w.done; !errors.Is(r.err, ErrLinkExpired) {
		t.Fatalf("the new device: %v", r.err)
	}
	if _, err := alice.svc.Start(context.Background(), w.pending.String()); !errors.Is(err, ErrLinkExpired) {
		t.Fatalf("the existing device: %v", err)
	}
	if strings.Contains(alice.log.String(), "linkUnreachable") {
		t.Fatal("an expired code was dialled")
	}
}
