package messenger

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// TestShortInvite: alice adds bob from a short link, which carries no
// card: she fetches it from bob's device over /samizdat/card/1, and they
// talk.
func TestShortInvite(t *testing.T) {
	ctx := context.Background()
	var skew atomic.Int64 // bob's clock runs ahead by this much
	alice := newNode(t, "alice")
	bob := newNodeTuned(t, "bob", func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	link, err := bob.m.ShortInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	si, err := identity.ParseShortInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	if len(link) > identity.MaxShortInviteLen || len(si.Addrs) == 0 || si.AccountID() != bob.m.AccountID() {
		t.Fatalf("short invite %q: %d characters, %d addresses", link, len(link), len(si.Addrs))
	}
	c, err := alice.m.AddContact(ctx, link, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "bob" || c.AccountID != bob.m.AccountID() || c.PeerID != bob.n.PeerID() || c.SafetyNumber == "" {
		t.Fatalf("contact %+v", c)
	}
	m := send(t, alice, "bob", "found you by a short link")
	waitState(t, alice, "bob", m.ID, StateDelivered)
	// The link serves several people (a QR code shown to a room) and
	// stays good until it expires.
	carol := newNode(t, "carol")
	if _, err := carol.m.AddContact(ctx, strings.ToUpper(link), "bob"); err != nil {
		t.Fatalf("second use of the link: %v", err)
	}
	skew.Store(int64(ShortInviteLifetime + time.Hour))
	dave := newNode(t, "dave")
	if _, err := dave.m.AddContact(ctx, link, "bob"); !errors.Is(err, ErrCardUnavailable) || !strings.Contains(err.Error(), "does not know this invite") {
		t.Fatalf("expired link: %v", err)
	}
	noContacts(t, dave)
}

func noContacts(t *testing.T, n *tnode) {
	t.Helper()
	cs, err := n.m.Contacts(context.Background())
	if err != nil || len(cs) != 0 {
		t.Fatalf("%s stored contacts %+v (%v)", n.name, cs, err)
	}
}

// TestShortInviteBadInput: a damaged link, an unknown secret, a card of
// another account, an offline inviter: each a clear error, nothing stored.
func TestShortInviteBadInput(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	link, err := bob.m.ShortInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	si, _ := identity.ParseShortInvite(link)
	reencode := func(f func(*identity.ShortInvite)) string {
		c := *si
		f(&c)
		l, err := identity.EncodeShortInvite(&c)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	typo := []byte(link)
	typo[30] = map[bool]byte{true: 'b', false: 'a'}[typo[30] == 'a']
	for _, tc := range []struct {
		name, link string
		want       error
		says       string
	}{
		{"truncated", link[:len(link)-10], identity.ErrBadInvite, "cut short"},
		{"tampered", string(typo), identity.ErrBadInvite, "damaged"},
		{"unknown secret", reencode(func(c *identity.ShortInvite) {
			c.Secret = make([]byte, identity.ShortSecretSize)
			rand.Read(c.Secret)
		}), ErrCardUnavailable, "does not know this invite"},
		// Bob's device and secret, carol's account: bob's card does not
		// match the account the link names.
		{"card of another account", reencode(func(c *identity.ShortInvite) {
			c.AccountKey = carol.m.Identity().SigningKey()
		}), ErrCardMismatch, "tampered"},
		{"own link", reencode(func(c *identity.ShortInvite) {
			c.AccountKey = alice.m.Identity().SigningKey()
		}), ErrSelf, "your own"},
	} {
		_, err := alice.m.AddContact(ctx, tc.link, "")
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v; want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
	noContacts(t, alice)

	// The inviter is offline and there is no DHT to fall back on.
	bob.stop()
	start := time.Now()
	_, err = alice.m.AddContact(ctx, link, "")
	if !errors.Is(err, ErrCardUnavailable) || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("offline inviter: %v", err)
	}
	t.Logf("offline inviter: error after %v: %v", time.Since(start).Round(time.Millisecond), err)
	// A node with no network at all says so.
	noContacts(t, alice)
	alice.stop()
	st, err := store.Open(filepath.Join(alice.dir, "db"), alice.key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	offline, err := New(ctx, Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer offline.Close()
	if _, err := offline.AddContact(ctx, link, ""); !errors.Is(err, ErrCardUnavailable) || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("without a network: %v", err)
	}
	if cs, err := offline.Contacts(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("stored contacts %+v (%v)", cs, err)
	}
}

// TestShortInviteFromDirectory: bob is offline when alice uses his short
// link; his card record in the DHT stands in for him: alice gets his card,
// checked against the account the link names, and her first message waits
// in bob's mailbox until he comes back.
func TestShortInviteFromDirectory(t *testing.T) {
	ctx := context.Background()
	boot, err := p2p.New(ctx, p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, EnableDHT: true, DHTServer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	host, ms, _ := startMailboxHost(t)
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	for _, n := range []*tnode{alice, bob} {
		n.net = func(pc *p2p.Config) {
			pc.EnableDHT, pc.DHTServer, pc.BootstrapPeers = true, true, boot.Addrs()
		}
	}
	alice.restartWith(nil)
	bob.restartWith(withMailbox(host))
	link, err := bob.m.ShortInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob's card published", func() bool {
		return bob.m.publishCard(ctx, bob.m.directory()) == nil
	})
	acct, mbID := bob.m.AccountID(), mailbox.KeyID(bob.m.mbKey)
	bob.stop()
	c, err := alice.m.AddContact(ctx, link, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.AccountID != acct || c.Name != "bob" {
		t.Fatalf("contact %+v", c)
	}
	m := send(t, alice, "bob", "while you were away")
	waitState(t, alice, "bob", m.ID, StateSent)
	if page, _, err := ms.List(ctx, mbID[:], store.MailboxQuery{Limit: 10, Now: time.Now()}); err != nil || len(page) == 0 {
		t.Fatalf("bob's mailbox host holds %d envelopes (%v)", len(page), err)
	}
	bob.start()
	waitState(t, alice, "bob", m.ID, StateDelivered)
	got := messages(t, bob, "alice")
	if len(got) != 1 || got[0].Body != "while you were away" {
		t.Fatalf("bob's messages from alice: %+v", got)
	}
}

// TestShortInviteAddrs: which of a node's addresses a short link names,
// and how many fit.
func TestShortInviteAddrs(t *testing.T) {
	si := func() *identity.ShortInvite {
		return &identity.ShortInvite{AccountKey: make([]byte, 32), Secret: make([]byte, identity.ShortSecretSize), DeviceKey: make([]byte, 32)}
	}
	expand := func(s *identity.ShortInvite) []string {
		var out []string
		for _, b := range s.Addrs {
			a, err := p2p.ExpandAddr(b)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		addrs []string
		want  []string
	}{
		{"loopback node (up's defaults)", []string{"/ip4/127.0.0.1/udp/4001/quic-v1", "/ip4/127.0.0.1/tcp/4001/ws", "/ip4/127.0.0.1/tcp/4001"},
			[]string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1", "/ip4/127.0.0.1/tcp/4001/ws"}},
		{"public before private and loopback", []string{"/ip4/127.0.0.1/tcp/1", "/ip4/192.168.1.5/tcp/1", "/ip4/203.0.113.7/tcp/1", "/ip4/203.0.113.7/udp/1/quic-v1"},
			[]string{"/ip4/203.0.113.7/tcp/1", "/ip4/203.0.113.7/udp/1/quic-v1", "/ip4/192.168.1.5/tcp/1"}},
		// A TLS WebSocket with the operator's --tls-name gets through DPI:
		// first, even if it leaves room for nothing else.
		{"--tls-name", []string{"/ip4/203.0.113.7/tcp/80", "/ip4/203.0.113.7/tcp/443/tls/sni/cdn.example.org/ws"},
			[]string{"/ip4/203.0.113.7/tcp/443/tls/sni/cdn.example.org/ws"}},
		{"relayed and DNS addresses never", []string{"/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8/p2p-circuit", "/dns4/example.org/tcp/1"},
			nil},
	} {
		s := si()
		link, err := fitAddrs(s, tc.addrs)
		if err != nil {
			t.Fatal(err)
		}
		got := expand(s)
		if len(link) > identity.MaxShortInviteLen || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: %d characters, addresses %q; want %q", tc.name, len(link), got, tc.want)
		}
	}
}
