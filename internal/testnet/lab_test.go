package testnet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The censorship lab with real samizdat daemons (issue 7). Needs root:
//
//	sudo go test -run Lab ./internal/testnet/
//
// The censor model × transport matrix is longer: see lab_matrix_test.go.

// Lab transports: what the outside node listens on.
type labTransport struct {
	Name   string
	listen func(ip string) []string
	obfs4  bool
	socks5 bool     // alice dials through a SOCKS5 proxy on an outside host
	broker bool     // a third node outside (wss), both bootstrap to it; a STUN server beside it
	extra  []string // more flags for carol's `samizdat up`
}

var (
	tTCP   = labTransport{Name: "tcp", listen: func(ip string) []string { return []string{"/ip4/" + ip + "/tcp/4001"} }}
	tQUIC  = labTransport{Name: "quic", listen: func(ip string) []string { return []string{"/ip4/" + ip + "/udp/4001/quic-v1"} }}
	tWS    = labTransport{Name: "ws", listen: func(ip string) []string { return []string{"/ip4/" + ip + "/tcp/80/ws"} }}
	tWSS   = labTransport{Name: "wss", listen: func(ip string) []string { return []string{"/ip4/" + ip + "/tcp/443/tls/ws"} }}
	tObfs4 = labTransport{Name: "obfs4", listen: tTCP.listen, obfs4: true}
	tSOCKS = labTransport{Name: "tcp via socks5", listen: tTCP.listen, socks5: true}
	// tAll is what a node would listen on by default in the wild.
	tAll = labTransport{Name: "all", listen: func(ip string) []string {
		return []string{"/ip4/" + ip + "/tcp/4001", "/ip4/" + ip + "/udp/4001/quic-v1", "/ip4/" + ip + "/tcp/443/tls/ws"}
	}}
)

// labRetryMax keeps the outbox retrying briskly in the lab.
const labRetryMax = "2s"

// pair is an inside user (a) and an outside one (c) who know each other
// through an invite, in a fresh lab.
type pair struct {
	lab    *Lab
	ah, ch *Host
	px     *Host // the SOCKS5 proxy's host, for tSOCKS
	bh     *Host // the broker's host (and STUN server's), for tWebRTC
	b      *Daemon
	stun   *Proc
	a, c   *Daemon
	tr     labTransport
	aArgs  []string
	follow *Proc
	start  time.Time
}

// newPair starts c on transport tr, and gives a c's invite (and bridge
// line); a is not up yet.
func newPair(t *testing.T, tr labTransport) *pair {
	t.Helper()
	l := NewLab(t)
	p := &pair{lab: l, ah: l.Inside("a"), ch: l.Outside("c"), tr: tr}
	p.a, p.c = NewDaemon(t, p.ah.Netns, "alice"), NewDaemon(t, p.ch.Netns, "carol")
	var cArgs []string
	for _, a := range tr.listen(p.ch.IP) {
		cArgs = append(cArgs, "--listen", a)
	}
	cArgs = append(cArgs, "--tls-name", "static.cdn-example.net", "--retry-max", labRetryMax)
	cArgs = append(cArgs, tr.extra...)
	p.aArgs = []string{"--listen", "/ip4/" + p.ah.IP + "/tcp/4001", "--retry-max", labRetryMax}
	if tr.broker {
		extra := p.startBroker(t)
		cArgs = append(cArgs, extra...)
		p.aArgs = append(p.aArgs, extra...)
	}
	if tr.obfs4 {
		bin := obfs4proxy(t)
		cArgs = append(cArgs, "--pt", "obfs4="+bin, "--serve-pt", "obfs4@"+p.ch.IP+":8443")
		p.c.Up(cArgs...)
		st := p.c.Status()
		if len(st.Bridges) != 1 {
			t.Fatalf("carol serves no obfs4 bridge: %+v\n%s", st, p.c.Log())
		}
		p.aArgs = append(p.aArgs, "--pt", "obfs4="+bin, "--bridge", st.Bridges[0])
	} else {
		p.c.Up(cArgs...)
	}
	if tr.broker {
		cID := p.c.Status().PeerID
		await(t, 20*time.Second, "carol connected to the broker", func() bool {
			return slices.Contains(p.b.Status().ConnectedPeers, cID)
		})
	}
	if tr.socks5 {
		proxy := l.Outside("px")
		p.px = proxy
		startEcho(t, proxy.Netns, proxy.IP+":1080", "socks5")
		p.aArgs = append(p.aArgs, "--socks5", proxy.IP+":1080")
	}
	p.a.Must("contacts", "add", p.c.Invite(), "--name", "carol")
	return p
}

func obfs4proxy(t *testing.T) string {
	bin, err := exec.LookPath("obfs4proxy")
	if err != nil {
		t.Skip("lab test: needs obfs4proxy (apt-get install obfs4proxy)")
	}
	return bin
}

// up starts a (its start is the origin of "time to first delivery") and
// follows its conversation with carol. queued are messages sent before,
// with a offline: they leave when it starts.
func (p *pair) up(t *testing.T, extra ...string) {
	t.Helper()
	p.start = time.Now()
	p.a.Up(append(slices.Clone(p.aArgs), extra...)...)
	p.follow = p.ah.Start([]string{"SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE="}, p.a.bin, "--profile", p.a.Dir, "messages", "carol", "--follow", "--json")
}

// deliveredAt returns when message id was first seen delivered: by the
// follower (events, within milliseconds), or else by a poll every 500 ms
// (the follower misses an event between its first listing and its
// subscription, and would only catch it at its 5 s re-poll).
func (p *pair) deliveredAt(id string, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	seen := 0
	nextPoll := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		lines := strings.Split(p.follow.Stdout.String(), "\n")
		for ; seen < len(lines)-1; seen++ {
			var m Message
			if json.Unmarshal([]byte(lines[seen]), &m) == nil && m.ID == id && m.State == "delivered" {
				return time.Now(), true
			}
		}
		if time.Now().After(nextPoll) {
			if p.a.State("carol", id) == "delivered" {
				return time.Now(), true
			}
			nextPoll = time.Now().Add(500 * time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, false
}

// result is one run of a pair: time to first delivery and latencies.
type result struct {
	Delivered bool
	First     time.Duration
	Latencies []time.Duration
}

// run starts a with one message queued, waits for it for up to timeout,
// then sends n more one by one, each waited for up to timeout.
func (p *pair) run(t *testing.T, n int, timeout time.Duration, extra ...string) result {
	t.Helper()
	var r result
	id := p.a.Send("carol", "first words through the censor")
	p.up(t, extra...)
	at, ok := p.deliveredAt(id, timeout)
	if !ok {
		return r
	}
	r.Delivered, r.First = true, at.Sub(p.start)
	for i := range n {
		sent := time.Now()
		id := p.a.Send("carol", fmt.Sprintf("message %d", i))
		at, ok := p.deliveredAt(id, timeout)
		if !ok {
			t.Logf("message %d not delivered within %v", i, timeout)
			continue
		}
		r.Latencies = append(r.Latencies, at.Sub(sent))
	}
	return r
}

// transportsOf returns the transports a's status shows open.
func transportsOf(st Status) []string {
	var out []string
	for _, tr := range st.Transports {
		if tr.Open > 0 {
			out = append(out, tr.Name)
		}
	}
	return out
}

// carolGot checks carol's node shows the message body from alice.
func (p *pair) carolGot(t *testing.T, body string) {
	t.Helper()
	for _, m := range p.c.Messages("alice") {
		if m.Body == body && !m.Outgoing {
			return
		}
	}
	t.Fatalf("carol has no %q from alice", body)
}

func TestLabCensorModels(t *testing.T) {
	RequireRoot(t, "nft", "iptables", "tc")
	t.Run("dns-gone", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tAll)
		p.lab.Apply(DNSGone)
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered with DNS gone\n%s", p.a.Log())
		}
		p.carolGot(t, "first words through the censor")
	})
	t.Run("dpi/wss-delivers", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tAll)
		p.lab.Apply(DPI)
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered under DPI though carol has wss\n%s", p.a.Log())
		}
		if got := transportsOf(p.a.Status()); !slices.Equal(got, []string{"wss"}) {
			t.Fatalf("open transports under DPI: %v, want only wss", got)
		}
		// Alice remembers it: next start she dials wss first.
		p.a.Stop()
		p.follow.Stop(5 * time.Second)
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered after a restart under DPI\n%s", p.a.Log())
		}
		if !strings.Contains(p.a.Log(), "preferTransports=[wss]") {
			t.Fatalf("alice did not start with wss remembered first\n%s", tail(p.a.Log(), 40))
		}
	})
	t.Run("dpi/obfs4-delivers", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tObfs4)
		p.lab.Apply(DPI)
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered over obfs4 under DPI\n%s", p.a.Log())
		}
		if got := transportsOf(p.a.Status()); !slices.Equal(got, []string{"obfs4"}) {
			t.Fatalf("open transports under DPI: %v, want only obfs4", got)
		}
	})
	t.Run("dpi/tcp-quic-blocked", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, labTransport{Name: "tcp+quic", listen: func(ip string) []string {
			return append(tTCP.listen(ip), tQUIC.listen(ip)...)
		}})
		p.lab.Apply(DPI)
		p.up(t)
		id := p.a.Send("carol", "blocked")
		if _, ok := p.deliveredAt(id, 12*time.Second); ok {
			t.Fatal("delivered over plain TCP/QUIC through the DPI censor")
		}
		if s := p.a.State("carol", id); s != "queued" && s != "failed" {
			t.Fatalf("blocked message in state %q, want it kept queued", s)
		}
		// The same cell without the censor delivers: the block was the DPI.
		p.lab.Lift()
		if _, ok := p.deliveredAt(id, 30*time.Second); !ok {
			t.Fatalf("not delivered after the DPI was lifted\n%s", p.a.Log())
		}
	})
	webrtcCensorModels(t)
	t.Run("blocklist/socks5-delivers", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tSOCKS)
		p.lab.Apply(Blocklist(p.ch.IP))
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered through the SOCKS5 proxy past the blocklist\n%s", p.a.Log())
		}
	})
	t.Run("throttle", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tAll)
		p.lab.Apply(Throttle)
		if r := p.run(t, 2, 30*time.Second); !r.Delivered || len(r.Latencies) != 2 {
			t.Fatalf("throttled: %+v\n%s", r, p.a.Log())
		}
	})
	t.Run("tls-443-only", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tAll)
		p.lab.Apply(TLSOnly)
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered over TLS on 443\n%s", p.a.Log())
		}
		if got := transportsOf(p.a.Status()); !slices.Equal(got, []string{"wss"}) {
			t.Fatalf("open transports: %v, want only wss", got)
		}
	})
	t.Run("sni-fp-blocklist", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tAll)
		p.lab.Apply(SNIBlocklist)
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered under the SNI and fingerprint blocklist\n%s", p.a.Log())
		}
		// The controls: the censor does drop the old SNI and the old
		// ClientHello, and lets Go's net/http through.
		target := p.ch.IP + ":443"
		hello := func(mode, name string) error {
			_, err := runHelper(t, p.ah.Netns, "SZ_NETNS_HELPER=hello", "SZ_MODE="+mode, "SZ_ADDR="+target, "SZ_NAME="+name)
			return err
		}
		if err := hello("nethttp", "www.samizdat.invalid"); err == nil {
			t.Error("a ClientHello naming www.samizdat.invalid got through")
		}
		if err := hello("oldsamizdat", "static.cdn-example.net"); err == nil {
			t.Error("samizdat's old ClientHello got through")
		}
		if err := hello("nethttp", "static.cdn-example.net"); err != nil {
			t.Errorf("Go net/http to carol's port was dropped: %v", err)
		}
	})
	t.Run("active-prober", func(t *testing.T) {
		t.Parallel()
		needTshark(t)
		p := newPair(t, tWSS)
		// The censor watches a first conversation, then probes carol's
		// port: the usual requests, upgrades with a wrong key, and a
		// replay of alice's captured connection.
		capt := startCapture(t, p.lab, "tcp port 443", p.ah.IP+":443")
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered over wss\n%s", p.a.Log())
		}
		file := capt.stop(t)
		// The first connection on 443 is alice's (carol dials alice on
		// her TCP port, if at all).
		replay := flows(t, file)["tcp 0 →"]
		if len(replay) == 0 {
			t.Fatal("no client flight captured to replay")
		}
		rf := filepath.Join(t.TempDir(), "replay.bin")
		if err := os.WriteFile(rf, replay, 0o644); err != nil {
			t.Fatal(err)
		}
		const name = "static.cdn-example.net"
		r := p.lab.probe(t, p.ch.IP+":443", name, rf, wsPathOf(t, p.c.Status().PeerID))
		t.Logf("prober: %+v", r)
		if r.Kind != "https" || !r.Static {
			t.Fatalf("the prober tells carol from a static web server: %+v", r)
		}
		// The control: with the path only carol's contacts know, the
		// same prober does see something else than a static server.
		if !strings.HasPrefix(r.Insider, "HTTP/1.1 101") {
			t.Fatalf("upgrade on carol's own path: %q, want 101 (else the probes prove nothing)", r.Insider)
		}
		if !strings.HasPrefix(r.Replay, "records [22 20 23") {
			t.Fatalf("replay answered %q: not a TLS server's answer", r.Replay)
		}
		// Under the model (probe, block on suspicion), alice still gets through.
		p.lab.Apply(activeProber(t, p.ch.IP, tcpPorts(tWSS, p.ch.IP), name))
		id := p.a.Send("carol", "after the probe")
		if _, ok := p.deliveredAt(id, 30*time.Second); !ok {
			t.Fatalf("not delivered after the prober passed carol\n%s", p.a.Log())
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tAll)
		p.lab.Apply(Shutdown)
		p.up(t)
		id := p.a.Send("carol", "during the shutdown")
		if _, ok := p.deliveredAt(id, 8*time.Second); ok {
			t.Fatal("delivered through a shutdown")
		}
		if s := p.a.State("carol", id); s != "queued" {
			t.Fatalf("message during the shutdown is %q, want queued (visible, not lost)", s)
		}
		st := p.a.Status()
		if st.Outbox["queued"] != 1 {
			t.Fatalf("status outbox during the shutdown: %v", st.Outbox)
		}
		p.lab.Lift()
		if _, ok := p.deliveredAt(id, 30*time.Second); !ok {
			t.Fatalf("not delivered after the shutdown lifted\n%s", p.a.Log())
		}
		p.carolGot(t, "during the shutdown")
	})
}

// Under a blocklist of the bootstrap IP, a node finds the network again
// through the peers it learnt earlier (peer exchange + persisted cache),
// and through it (the DHT) a contact who has moved since the invite.
func TestLabBlocklistPeerCache(t *testing.T) {
	t.Parallel()
	l := NewLab(t)
	ah, bh, dh, ch := l.Inside("a"), l.Outside("b"), l.Outside("d"), l.Outside("c")
	a, b, d, c := NewDaemon(t, ah.Netns, "alice"), NewDaemon(t, bh.Netns, "boot"), NewDaemon(t, dh.Netns, "dora"), NewDaemon(t, ch.Netns, "carol")
	listen := func(ip string) []string {
		var out []string
		for _, a := range tAll.listen(ip) {
			out = append(out, "--listen", a)
		}
		return append(out, "--retry-max", labRetryMax)
	}
	b.Up(listen(bh.IP)...)
	boot := "/ip4/" + bh.IP + "/tcp/4001/p2p/" + b.Status().PeerID
	d.Up(append(listen(dh.IP), "--bootstrap", boot)...)
	c.Up(append(listen(ch.IP), "--bootstrap", boot)...)
	invite := c.Invite()
	a.Must("contacts", "add", invite, "--name", "carol")

	// 1. Alice reaches the network through the bootstrap node and learns
	// dora through peer exchange.
	a.Up(append(listen(ah.IP), "--bootstrap", boot)...)
	dID := d.Status().PeerID
	await(t, 20*time.Second, "alice connected to dora through peer exchange", func() bool {
		return slices.Contains(a.Status().ConnectedPeers, dID)
	})
	id := a.Send("carol", "before the blocklist")
	a.WaitState("carol", id, "delivered", 30*time.Second)
	a.Stop()

	// 2. Carol moves to a new address: her invite is stale.
	c.Stop()
	ch.Readdress("eth0", "198.19.1.50/24")
	ch.Route("default", "198.19.1.1")
	c.Up(append(listen("198.19.1.50"), "--bootstrap", boot)...)
	cID := c.Status().PeerID
	await(t, 20*time.Second, "dora connected to carol at her new address", func() bool {
		return slices.Contains(d.Status().ConnectedPeers, cID)
	})

	// 3. The censor blocks the bootstrap node; alice starts with the same
	// configuration and still gets through.
	l.Apply(Blocklist(bh.IP))
	a.Up(append(listen(ah.IP), "--bootstrap", boot)...)
	id = a.Send("carol", "after the blocklist")
	a.WaitState("carol", id, "delivered", 45*time.Second)
	st := a.Status()
	if slices.Contains(st.ConnectedPeers, b.Status().PeerID) {
		t.Fatal("alice is connected to the blocked bootstrap node")
	}
	if !slices.Contains(st.ConnectedPeers, dID) {
		t.Fatalf("alice is not connected to dora, her cached entry point: %v", st.ConnectedPeers)
	}

	// Control: erin, inside too, with the same invite and bootstrap but no
	// peer cache, does not get through.
	eh := l.Inside("e")
	e := NewDaemon(t, eh.Netns, "erin")
	e.Must("contacts", "add", invite, "--name", "carol")
	e.Up(append(listen(eh.IP), "--bootstrap", boot)...)
	id = e.Send("carol", "without a peer cache")
	if e.AwaitState("carol", id, "delivered", 10*time.Second) {
		t.Fatal("erin got through without a peer cache: the test proves nothing")
	}
}

func await(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wsPathOf is the secret WebSocket upgrade path of the node with peer id
// id (internal/p2p's wsPath, computed here: the lab imports nothing of
// ours): the prober's control, knowledge only a node's contacts have.
func wsPathOf(t *testing.T, id string) string {
	t.Helper()
	const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	n := new(big.Int)
	for _, c := range id {
		i := strings.IndexRune(alphabet, c)
		if i < 0 {
			t.Fatalf("peer id %q: not base58", id)
		}
		n.Mul(n, big.NewInt(58)).Add(n, big.NewInt(int64(i)))
	}
	raw := n.Bytes()
	for _, c := range id {
		if c != '1' {
			break
		}
		raw = append([]byte{0}, raw...)
	}
	h := sha256.Sum256(append([]byte("ws upgrade path v1\x00"), raw...))
	return "/" + hex.EncodeToString(h[:12])
}
