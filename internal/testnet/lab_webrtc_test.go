package testnet

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// WebRTC in the lab (issue 15): carol listens on WebRTC only; the offer
// and answer go through a broker, a third node outside that alice reaches
// over secure WebSocket and carol is connected to; a STUN server runs
// beside the broker (the lab is offline: no public STUN server).

// webrtcPort is carol's WebRTC (UDP) port; stunPort the lab STUN server's.
const (
	webrtcPort = "4002"
	stunPort   = "3478"
)

var tWebRTC = labTransport{Name: "webrtc", broker: true, listen: func(ip string) []string {
	return []string{"/ip4/" + ip + "/udp/" + webrtcPort + "/webrtc"}
}}

// startBroker starts the broker node and the STUN server on a new outside
// host, and returns the flags carol and alice need: the broker as
// bootstrap peer, the STUN server.
func (p *pair) startBroker(t *testing.T) []string {
	t.Helper()
	p.bh = p.lab.Outside("b")
	p.stun = startSTUN(t, p.bh.Netns, p.bh.IP+":"+stunPort)
	p.b = NewDaemon(t, p.bh.Netns, "broker")
	p.b.Up("--listen", "/ip4/"+p.bh.IP+"/tcp/443/tls/ws", "--tls-name", "static.cdn-example.net")
	var boot string
	for _, a := range p.b.Status().Addrs {
		if strings.Contains(a, "/tls/") {
			boot = a
		}
	}
	if boot == "" {
		t.Fatalf("broker has no wss address: %v", p.b.Status().Addrs)
	}
	return []string{"--bootstrap", boot, "--stun", p.bh.IP + ":" + stunPort}
}

// startSTUN runs the lab's STUN server (helper mode "stun") in ns.
func startSTUN(t *testing.T, ns *Netns, addr string) *Proc {
	t.Helper()
	p := ns.Start([]string{"SZ_NETNS_HELPER=stun", "SZ_ADDR=" + addr}, os.Args[0])
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Stdout.String(), "listening") {
		select {
		case <-p.Done():
			t.Fatalf("stun helper exited: %v %s", p.Err(), p.Stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("stun helper did not start")
		}
	}
	return p
}

// serveSTUN is a minimal STUN server (RFC 8489 binding only, as pion's
// and every public one answers it): it prints "binding FROM" per request.
func serveSTUN(addr string) {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("listening")
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			os.Exit(0)
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() != nil || m.Type != stun.BindingRequest {
			continue
		}
		ua := from.(*net.UDPAddr)
		resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
		if err != nil {
			continue
		}
		_, _ = pc.WriteTo(resp.Raw, from)
		fmt.Println("binding", from)
	}
}

// stunClients lists the hosts that asked the lab STUN server.
func (p *pair) stunClients() []string {
	var out []string
	for _, l := range strings.Split(p.stun.Stdout.String(), "\n") {
		if from, ok := strings.CutPrefix(l, "binding "); ok {
			host, _, _ := strings.Cut(from, ":")
			if !slices.Contains(out, host) {
				out = append(out, host)
			}
		}
	}
	return out
}

// webrtcCensorModels are TestLabCensorModels' subtests of the "dpi-udp"
// model: DPI where calls work. WebRTC beats it; plain TCP and QUIC do not.
func webrtcCensorModels(t *testing.T) {
	t.Run("dpi-udp/webrtc-delivers", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tWebRTC)
		p.lab.Apply(DPIUDP)
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered over WebRTC under DPI with UDP open\n%s", p.a.Log())
		}
		p.carolGot(t, "first words through the censor")
		if got := transportsOf(p.a.Status()); !slices.Contains(got, "webrtc") {
			t.Fatalf("alice's open transports: %v, want webrtc", got)
		}
		// Carol's only listener is WebRTC: her side of it is open too.
		if got := transportsOf(p.c.Status()); !slices.Contains(got, "webrtc") {
			t.Fatalf("carol's open transports: %v, want webrtc", got)
		}
		if got := p.stunClients(); !slices.Contains(got, p.ah.IP) {
			t.Fatalf("the lab STUN server was asked by %v, not by alice (%s)", got, p.ah.IP)
		}
	})
	t.Run("dpi-udp/tcp-quic-blocked", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, labTransport{Name: "tcp+quic", listen: func(ip string) []string {
			return append(tTCP.listen(ip), tQUIC.listen(ip)...)
		}})
		p.lab.Apply(DPIUDP)
		p.up(t)
		id := p.a.Send("carol", "blocked")
		if _, ok := p.deliveredAt(id, 12*time.Second); ok {
			t.Fatal("delivered over plain TCP/QUIC through the dpi-udp censor")
		}
		p.lab.Lift()
		if _, ok := p.deliveredAt(id, 30*time.Second); !ok {
			t.Fatalf("not delivered after the censor was lifted\n%s", p.a.Log())
		}
	})
}

// checkWebRTCFlight checks what the censor sees of a WebRTC connection
// beyond the byte scan: STUN carries random ICE credentials (no constant
// ufrag such as libp2p's "libp2p+webrtc+v1", different for each end, no
// SOFTWARE attribute), the DTLS certificates are the self-signed "WebRTC"
// ones browsers make, and no libp2p string appears anywhere.
func checkWebRTCFlight(t *testing.T, file string, known []string) {
	t.Helper()
	if len(known) > 0 {
		t.Errorf("libp2p strings in WebRTC's plaintext: %v", known)
	}
	dec := []string{"-d", "udp.port==" + webrtcPort + ",stun"}
	var ufrags []string
	for _, r := range tsharkArgs(t, file, dec, "stun.att.username", "stun.att.username", "stun.att.software") {
		for _, u := range strings.Split(r[0], ",") {
			for _, part := range strings.Split(u, ":") {
				if len(part) < 8 {
					t.Errorf("STUN username %q: ufrag %q shorter than 8 characters", u, part)
				}
				if !slices.Contains(ufrags, part) {
					ufrags = append(ufrags, part)
				}
			}
		}
		if len(r) > 1 && r[1] != "" {
			t.Errorf("STUN SOFTWARE attribute %q", r[1])
		}
	}
	if len(ufrags) < 2 {
		t.Errorf("STUN ufrags %v: want one per end (random, per connection)", ufrags)
	}
	for _, u := range ufrags {
		for _, s := range append(slices.Clone(libp2pStrings), "libp2p+webrtc", "samizdat") {
			if strings.Contains(strings.ToLower(u), s) {
				t.Errorf("ufrag %q carries %q", u, s)
			}
		}
	}
	certs := tsharkArgs(t, file, dec, "dtls.handshake.type == 11", "x509sat.printableString", "x509sat.uTF8String", "x509af.serialNumber")
	if len(certs) < 2 {
		t.Fatalf("%d DTLS certificates captured, want both ends'", len(certs))
	}
	var serials []string
	for _, c := range certs {
		for len(c) < 3 {
			c = append(c, "")
		}
		for _, name := range strings.Split(c[0]+","+c[1], ",") {
			if name != "" && name != "WebRTC" {
				t.Errorf("DTLS certificate name %q, want only WebRTC (as browsers' certificates)", name)
			}
		}
		serials = append(serials, c[2])
	}
	if uniq := slices.Compact(slices.Sorted(slices.Values(serials))); len(uniq) < 2 {
		t.Errorf("DTLS certificate serials %v: the two ends share one", serials)
	}
	t.Logf("webrtc: STUN ufrags %v, DTLS certificates %v", ufrags, certs)
}

// knownInUDP lists the libp2p strings in the UDP flows of a capture.
func knownInUDP(t *testing.T, file string) []string {
	t.Helper()
	var out []string
	for key, b := range flows(t, file) {
		if !strings.HasPrefix(key, "udp ") {
			continue
		}
		for _, s := range append(slices.Clone(libp2pStrings), "libp2p+webrtc") {
			if strings.Contains(string(b), s) && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
