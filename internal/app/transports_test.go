package app

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// A relay serves secure WebSocket with its TLS name and an obfs4 bridge; a
// node reaching it remembers the relay as an entry point and the transport
// that worked, across a restart.
func TestRelayTransportsAndNetMemory(t *testing.T) {
	bin, err := exec.LookPath("obfs4proxy")
	if err != nil {
		t.Skip("obfs4proxy not installed (apt-get install obfs4proxy)")
	}
	r, err := StartRelay(relayCtx(t), RelayOptions{
		Dir: filepath.Join(t.TempDir(), "relay"), LoopbackOnly: true, EnableDHT: true,
		Listen:     []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/tls/ws"},
		Transports: TransportOptions{TLSName: "cdn.example.test", PT: map[string]string{"obfs4": bin}, ServePT: []string{"obfs4@127.0.0.1:0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if b := r.Bridges(); len(b) != 1 || !strings.HasPrefix(b[0], "obfs4 127.0.0.1:") {
		t.Fatalf("relay bridges: %q", b)
	}
	var wss string
	for _, a := range r.Addrs() {
		if strings.Contains(a, "/tls/sni/cdn.example.test/ws/") {
			wss = a
		}
	}
	if wss == "" {
		t.Fatalf("relay has no wss address: %v", r.Addrs())
	}

	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "alice")
	if _, err := Init(ctx, dir, "alice", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, EnableDHT: true, Bootstrap: []string{wss}, APIAddr: "-"}
	n, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	// Connected, and identify has told which protocols the relay speaks.
	for len(n.P2P.PeerCache()) == 0 {
		if time.Now().After(deadline) {
			n.Close()
			t.Fatal("alice did not reach the relay over wss")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// Next start, without the bootstrap flag: the relay comes from the
	// peer cache, wss is dialled first.
	o.Bootstrap = nil
	n, err = Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.TransportOrder) == 0 || st.TransportOrder[0] != "wss" {
		t.Fatalf("transport order after a restart: %v", st.TransportOrder)
	}
	deadline = time.Now().Add(20 * time.Second)
	for !n.P2P.IsConnected(r.PeerID()) || len(n.P2P.PeerCache()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("alice did not find the relay again from her peer cache")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := n.Status(ctx); st.PeerCache < 1 || !slices.ContainsFunc(st.Transports, func(tr apiclient.Transport) bool { return tr.Name == "wss" && tr.Open > 0 }) {
		t.Fatalf("status: peer cache %d, transports %+v", st.PeerCache, st.Transports)
	}
}

// A node keeps its TLS name, certificate and site across restarts, makes
// new ones when the name changes, and renews the certificate 30 days
// before expiry keeping the name and the site.
func TestTLSIdentityKeptAndRenewed(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	id, changed, err := renewTLSIdentity(nil, "", now)
	if err != nil || !changed {
		t.Fatalf("first identity: %v %v", changed, err)
	}
	name, notAfter, seed, err := p2p.TLSIdentityInfo(id)
	if err != nil || !slices.Contains(p2p.TLSNames, name) {
		t.Fatalf("first identity's name %q (%v): not one of the list", name, err)
	}
	// A restart before the renewal is due keeps it: the last minute
	// before then (the issue date is random within 60 days, so "a day
	// later" can already be due, 1 time in 60).
	later := notAfter.Add(-p2p.CertRenewBefore - time.Minute)
	if later.Before(now) {
		t.Fatalf("a new identity is due for renewal at once: until %v at %v", notAfter, now)
	}
	for _, give := range []string{"", name} {
		again, changed, err := renewTLSIdentity(id, give, later)
		if err != nil || changed || string(again) != string(id) {
			t.Fatalf("restart with --tls-name %q: changed %v %v", give, changed, err)
		}
	}
	own, changed, err := renewTLSIdentity(id, "mail.example.org", now)
	if n, _, s, _ := p2p.TLSIdentityInfo(own); err != nil || !changed || n != "mail.example.org" || string(s) != string(seed) {
		t.Fatalf("--tls-name change: %q changed %v %v", n, changed, err)
	}
	due := notAfter.Add(-p2p.CertRenewBefore + time.Hour)
	renewed, changed, err := renewTLSIdentity(id, "", due)
	n, na, s, _ := p2p.TLSIdentityInfo(renewed)
	if err != nil || !changed || n != name || string(s) != string(seed) || !na.After(notAfter) {
		t.Fatalf("renewal: %q until %v (was %v), changed %v %v", n, na, notAfter, changed, err)
	}
	// A damaged identity is replaced, not fatal.
	if _, changed, err := renewTLSIdentity([]byte("garbage"), "", now); err != nil || !changed {
		t.Fatalf("damaged identity: %v %v", changed, err)
	}
}

// A relay with no --tls-name shows the same name after a restart.
func TestRelayKeepsItsTLSName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	sni := func() string {
		r, err := StartRelay(relayCtx(t), RelayOptions{Dir: dir, LoopbackOnly: true, Listen: []string{"/ip4/127.0.0.1/tcp/0/tls/ws"}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for _, a := range r.Addrs() {
			if _, rest, ok := strings.Cut(a, "/tls/sni/"); ok {
				name, _, _ := strings.Cut(rest, "/")
				return name
			}
		}
		t.Fatalf("no /tls/sni/ address: %v", r.Addrs())
		return ""
	}
	first := sni()
	if !slices.Contains(p2p.TLSNames, first) {
		t.Fatalf("relay's name %q is not one of the list", first)
	}
	if again := sni(); again != first {
		t.Fatalf("relay's name changed across a restart: %q, then %q", first, again)
	}
}

// The ECH key is made once and kept (its config travels in the node's
// addresses); only another cover name makes a new one.
func TestKeepECH(t *testing.T) {
	k1, changed, err := keepECH(nil, "")
	if err != nil || !changed {
		t.Fatalf("first key: %v %v", changed, err)
	}
	if k2, changed, err := keepECH(k1, ""); err != nil || changed || !bytes.Equal(k1, k2) {
		t.Fatalf("kept key changed: %v %v", changed, err)
	}
	name, _ := p2p.ECHPublicName(k1)
	if k2, changed, _ := keepECH(k1, name); changed || !bytes.Equal(k1, k2) {
		t.Fatal("same cover name made a new key")
	}
	k3, changed, err := keepECH(k1, "cover.example.test")
	if err != nil || !changed {
		t.Fatalf("new cover name: %v %v", changed, err)
	}
	if n, _ := p2p.ECHPublicName(k3); n != "cover.example.test" {
		t.Fatalf("cover name %q", n)
	}
	if _, changed, _ := keepECH([]byte("garbage"), ""); !changed {
		t.Fatal("a malformed key was kept")
	}
}

// ECH keys across runs: on, the current key is advertised and the one
// before it accepted; off, both kept keys are accepted and none advertised.
func TestECHKeys(t *testing.T) {
	first, err := echKeys(nil, nil, true, "")
	if err != nil || first.use == nil || !bytes.Equal(first.save, first.use) || len(first.accept) != 0 {
		t.Fatalf("first run: %+v %v", first, err)
	}
	same, _ := echKeys(first.use, nil, true, "")
	if !bytes.Equal(same.use, first.use) || same.save != nil {
		t.Fatalf("second run changed the key: %+v", same)
	}
	renamed, _ := echKeys(first.use, nil, true, "cover.example.test")
	if renamed.save == nil || bytes.Equal(renamed.use, first.use) || len(renamed.accept) != 1 || !bytes.Equal(renamed.accept[0], first.use) {
		t.Fatalf("new cover name: the old key is not kept accepted: %+v", renamed)
	}
	off, _ := echKeys(renamed.use, first.use, false, "")
	if off.use != nil || off.save != nil || len(off.accept) != 2 {
		t.Fatalf("ECH off: %+v", off)
	}
	never, _ := echKeys(nil, nil, false, "")
	if never.use != nil || never.accept != nil || never.save != nil {
		t.Fatalf("never on: %+v", never)
	}
}
