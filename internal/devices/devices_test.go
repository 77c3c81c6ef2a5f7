package devices

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

var now = time.Unix(1_800_000_000, 0)

type testDevice struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	peer string
}

func newTestDevice(t *testing.T) testDevice {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testDevice{priv: priv, pub: pub, peer: identity.DevicePeerID(pub)}
}

func (d testDevice) cert(t *testing.T, account keys.PublicIdentity, name string) identity.Device {
	dev, err := identity.NewDevice(account, d.pub, []string{"/ip4/127.0.0.1/tcp/1"}, func(m []byte) ([]byte, error) { return ed25519.Sign(d.priv, m), nil })
	if err != nil {
		t.Fatal(err)
	}
	dev.Name = name
	return dev
}

// linkOnce runs a whole exchange between an existing device of account and
// a new device, over a pipe, and returns what each side ended with.
func linkOnce(t *testing.T, pending *PendingLink, code string, account *keys.Identity, existing, newDev testDevice) (newList []identity.Device, added identity.Device, errNew, errOld error) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	type result struct {
		devs []identity.Device
		code string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s, err := pending.Answer(b, existing.peer)
		if err != nil {
			b.Close()
			done <- result{err: err}
			return
		}
		id, _, err := s.Receive()
		if err != nil {
			done <- result{err: err}
			return
		}
		_, devs, err := s.Accept(id.Public(), newDev.cert(t, id.Public(), "phone"))
		done <- result{devs: devs, code: s.Code(), err: err}
	}()
	l, err := ParseLink(code, now)
	if err != nil {
		a.Close()
		<-done
		return nil, identity.Device{}, nil, err
	}
	s, err := Begin(rand.Reader, a, l, existing.peer)
	if err == nil {
		added, err = s.Provision(&wirepb.LinkProvision{Identity: account.Marshal(), Name: "alice"}, account.Public())
	}
	if err == nil {
		err = s.Finish(2, []identity.Device{existing.cert(t, account.Public(), "laptop"), added})
	}
	if err != nil {
		a.Close()
	}
	r := <-done
	if err == nil && r.err == nil && r.code != s.Code() {
		t.Fatalf("codes differ: %q and %q", r.code, s.Code())
	}
	return r.devs, added, r.err, err
}

func TestLinkExchange(t *testing.T) {
	account, _ := keys.GenerateIdentity(rand.Reader)
	existing, newDev := newTestDevice(t), newTestDevice(t)
	p, err := NewLink(rand.Reader, newDev.pub, []string{"/ip4/127.0.0.1/tcp/4001"}, now, DefaultLinkTTL)
	if err != nil {
		t.Fatal(err)
	}
	code := p.String()
	if len(code) > 300 {
		t.Errorf("link code of %d characters", len(code))
	}
	devs, added, errNew, errOld := linkOnce(t, p, code, account, existing, newDev)
	if errNew != nil || errOld != nil {
		t.Fatalf("link: new %v, existing %v", errNew, errOld)
	}
	if added.PeerID != newDev.peer || len(devs) != 2 || devs[1].PeerID != newDev.peer {
		t.Fatalf("added %v, list %v", added.PeerID, devs)
	}
	// The same code again: refused, whoever holds it.
	_, _, errNew, errOld = linkOnce(t, p, code, account, existing, newDev)
	if !errors.Is(errNew, ErrLinkUsed) || errOld == nil {
		t.Fatalf("reused link: new %v, existing %v", errNew, errOld)
	}
}

func TestLinkBadInput(t *testing.T) {
	account, _ := keys.GenerateIdentity(rand.Reader)
	existing, newDev := newTestDevice(t), newTestDevice(t)
	p, _ := NewLink(rand.Reader, newDev.pub, nil, now, DefaultLinkTTL)
	code := p.String()

	// Altered in transit: the checksum catches it.
	i := len(LinkScheme) + 10
	alt := code[:i] + string("ab"[boolInt(code[i] == 'a')]) + code[i+1:]
	if _, err := ParseLink(alt, now); !errors.Is(err, ErrBadLink) {
		t.Errorf("altered link: %v", err)
	}
	if _, err := ParseLink("samizdat:abc", now); !errors.Is(err, ErrBadLink) {
		t.Errorf("other link: %v", err)
	}
	// Stale.
	if _, err := ParseLink(code, now.Add(DefaultLinkTTL+time.Second)); !errors.Is(err, ErrLinkExpired) {
		t.Errorf("stale link: %v", err)
	}
	// Case does not matter (a QR code in upper case).
	if _, err := ParseLink(strings.ToUpper(code), now); err != nil {
		t.Errorf("upper-case link: %v", err)
	}
	// Someone with a forged secret (a link re-made around the same device
	// key): refused by the new device, which burns the code after a few.
	forged, _ := NewLink(rand.Reader, newDev.pub, nil, now, DefaultLinkTTL)
	forged.Ephemeral = p.Ephemeral
	var errNew error
	for range maxBadAttempts {
		_, _, errNew, errOld := linkOnce(t, p, forged.String(), account, existing, newDev)
		if !errors.Is(errNew, ErrLinkAuth) || errOld == nil {
			t.Fatalf("forged secret: new %v, existing %v", errNew, errOld)
		}
	}
	_, _, errNew, _ = linkOnce(t, p, code, account, existing, newDev)
	if !errors.Is(errNew, ErrLinkUsed) {
		t.Fatalf("burnt link: %v", errNew)
	}
	// A link naming another ephemeral key than the device holds (the
	// transcript differs): refused by the new device.
	p2, _ := NewLink(rand.Reader, newDev.pub, nil, now, DefaultLinkTTL)
	other, _ := NewLink(rand.Reader, newDev.pub, nil, now, DefaultLinkTTL)
	other.Secret = p2.Secret
	_, _, errNew, errOld := linkOnce(t, p2, other.String(), account, existing, newDev)
	if !errors.Is(errNew, ErrLinkAuth) || !errors.Is(errOld, ErrLinkRefused) {
		t.Fatalf("wrong ephemeral: new %v, existing %v", errNew, errOld)
	}
	// A device that certifies another key than the link names.
	p3, _ := NewLink(rand.Reader, newTestDevice(t).pub, nil, now, DefaultLinkTTL)
	_, _, _, errOld = linkOnce(t, p3, p3.String(), account, existing, newDev)
	if !errors.Is(errOld, ErrWrongDevice) {
		t.Fatalf("wrong device key: %v", errOld)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestList(t *testing.T) {
	account, _ := keys.GenerateIdentity(rand.Reader)
	a, b := newTestDevice(t), newTestDevice(t)
	var l List
	l.Ensure(a.cert(t, account.Public(), "laptop"), now)
	if l.Version != 0 || len(l.Active()) != 1 {
		t.Fatalf("after ensure: %+v", l)
	}
	if err := l.Add(b.cert(t, account.Public(), "phone"), now); err != nil || l.Version != 1 {
		t.Fatalf("add: %v, version %d", err, l.Version)
	}
	if _, err := l.Revoke(a.peer, a.peer, now); !errors.Is(err, ErrRevokeSelf) {
		t.Fatalf("revoke self: %v", err)
	}
	if _, err := l.Revoke("nosuchdevice", a.peer, now); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if _, err := l.Revoke(b.peer[:8], a.peer, now); !errors.Is(err, ErrAmbiguousDevice) || l.Version != 1 {
		t.Fatalf("revoke by a prefix every device has: %v", err)
	}
	if _, err := l.Revoke(b.peer[len(b.peer)-8:], a.peer, now); err != nil || l.Version != 2 || l.IsActive(b.peer) {
		t.Fatalf("revoke by suffix: %v, %+v", err, l)
	}
	if err := l.Add(b.cert(t, account.Public(), "phone"), now); !errors.Is(err, ErrRevoked) {
		t.Fatalf("re-add revoked: %v", err)
	}
	// An older list is not adopted; a newer one is, revoking what it omits.
	var other List
	other.Ensure(b.cert(t, account.Public(), "phone"), now)
	if other.Adopt(1, []identity.Device{a.cert(t, account.Public(), "laptop"), b.cert(t, account.Public(), "phone")}, now); other.Version != 1 {
		t.Fatalf("adopt: %+v", other)
	}
	if other.Adopt(0, nil, now) {
		t.Fatal("adopted an older list")
	}
	if !other.Adopt(2, []identity.Device{a.cert(t, account.Public(), "laptop")}, now) || other.IsActive(b.peer) {
		t.Fatalf("adopt newer: %+v", other)
	}
}

// BenchmarkLinkExchange is one whole link exchange over an in-memory pipe:
// both key agreements, the sealed provision and the certificate.
func BenchmarkLinkExchange(b *testing.B) {
	t := &testing.T{}
	account, _ := keys.GenerateIdentity(rand.Reader)
	existing, newDev := newTestDevice(t), newTestDevice(t)
	for b.Loop() {
		p, _ := NewLink(rand.Reader, newDev.pub, nil, now, DefaultLinkTTL)
		if _, _, errNew, errOld := linkOnce(t, p, p.String(), account, existing, newDev); errNew != nil || errOld != nil {
			b.Fatal(errNew, errOld)
		}
	}
}
