package p2p

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const wssAddr = "/ip4/127.0.0.1/tcp/0/tls/ws"

// echoed checks a's echo protocol round trip to b.
func echoed(t *testing.T, a, b *Node) {
	t.Helper()
	b.Handle("/test/echo/1", func(s Stream) { _, _ = io.Copy(s, s); s.Close() })
	s, err := a.OpenStream(testCtx(t, 20*time.Second), b.PeerID(), "/test/echo/1")
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo: %q %v", buf, err)
	}
}

func TestSecureWebSocketWithSNIAndWebPage(t *testing.T) {
	b := newTestNode(t, Config{ListenAddrs: []string{wssAddr}, TLSName: "cdn.example.test"})
	var addr string
	for _, a := range b.Addrs() {
		if strings.Contains(a, "/tls/sni/cdn.example.test/ws") {
			addr = a
		}
	}
	if addr == "" {
		t.Fatalf("no /tls/sni/NAME/ws address in %v", b.Addrs())
	}
	a := newTestNode(t, Config{})
	if err := a.Connect(testCtx(t, 10*time.Second), b.PeerID(), []string{addr}); err != nil {
		t.Fatalf("connect over wss: %v", err)
	}
	echoed(t, a, b)
	if got := a.Transports(); len(got) != 1 || got[0].Name != "wss" || got[0].Open != 1 || got[0].LastOK.IsZero() {
		t.Fatalf("Transports: %+v", got)
	}
	if got := a.WorkedTransports(); len(got) != 1 || got[0] != "wss" {
		t.Fatalf("WorkedTransports: %v", got)
	}

	// A browser on the same port gets an ordinary page over TLS, and the
	// certificate names the configured server.
	hostport := strings.Split(addr, "/")[2] + ":" + strings.Split(addr, "/")[4]
	var seen string
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection:   func(cs tls.ConnectionState) error { seen = cs.PeerCertificates[0].Subject.CommonName; return nil },
	}}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Get("https://" + hostport + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>") || seen != "cdn.example.test" {
		t.Fatalf("https page: %d %q cert %q", resp.StatusCode, body, seen)
	}
}

func TestRankPrefersRememberedTransports(t *testing.T) {
	m := newTransportMemory([]string{"wss"}, nil)
	addrs := mustAddrs(t, "/ip4/198.18.0.1/tcp/4001", "/ip4/198.18.0.1/udp/4001/quic-v1", "/ip4/198.18.0.1/tcp/443/tls/sni/x.test/ws")
	got := m.rank(addrs)
	if len(got) != 3 || TransportName(got[0].Addr.String()) != "wss" || got[0].Delay != 0 {
		t.Fatalf("rank: %v", got)
	}
	for _, ad := range got[1:] {
		if ad.Delay < fallbackDelay {
			t.Fatalf("fallback %v dialled after %v, want ≥ %v", ad.Addr, ad.Delay, fallbackDelay)
		}
	}
}

// socks5 is a minimal SOCKS5 server (no auth, CONNECT only) counting the
// connections it forwards.
func socks5(t *testing.T) (string, *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h := make([]byte, 2)
				if _, err := io.ReadFull(c, h); err != nil {
					return
				}
				methods := make([]byte, h[1])
				io.ReadFull(c, methods)
				c.Write([]byte{5, 0})
				req := make([]byte, 4)
				if _, err := io.ReadFull(c, req); err != nil || req[1] != 1 || req[3] != 1 {
					return
				}
				ipport := make([]byte, 6)
				io.ReadFull(c, ipport)
				dst := &net.TCPAddr{IP: net.IP(ipport[:4]), Port: int(binary.BigEndian.Uint16(ipport[4:]))}
				up, err := net.Dial("tcp", dst.String())
				if err != nil {
					c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
					return
				}
				defer up.Close()
				n.Add(1)
				c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), &n
}

func TestSOCKS5Dialing(t *testing.T) {
	proxyAddr, used := socks5(t)
	b := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	a := newTestNode(t, Config{SOCKS5: proxyAddr})
	if err := a.Connect(testCtx(t, 10*time.Second), b.PeerID(), b.Addrs()); err != nil {
		t.Fatalf("connect through socks5: %v", err)
	}
	echoed(t, a, b)
	if used.Load() == 0 {
		t.Fatal("the connection did not go through the SOCKS5 proxy")
	}
}

func TestObfs4PluggableTransport(t *testing.T) {
	bin, err := exec.LookPath("obfs4proxy")
	if err != nil {
		t.Skip("obfs4proxy not installed (apt-get install obfs4proxy)")
	}
	pt := PTConfig{Binary: map[string]string{"obfs4": bin}, Serve: []string{"obfs4@127.0.0.1:0"}, StateDir: t.TempDir()}
	b := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}, PT: pt})
	lines := b.Bridges()
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "obfs4 127.0.0.1:") || !strings.Contains(lines[0], "cert=") {
		t.Fatalf("Bridges: %q", lines)
	}
	br, err := ParseBridge(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	a := newTestNode(t, Config{PT: PTConfig{Binary: pt.Binary, Bridges: []Bridge{br}, StateDir: t.TempDir()}})
	bridgeAddr := "/ip4/127.0.0.1/tcp/" + strings.Split(br.Addr, ":")[1]
	if err := a.Connect(testCtx(t, 20*time.Second), b.PeerID(), []string{bridgeAddr}); err != nil {
		t.Fatalf("connect through obfs4: %v", err)
	}
	echoed(t, a, b)
	if got := a.Transports(); len(got) == 0 || got[0].Name != "obfs4" {
		t.Fatalf("Transports: %+v", got)
	}
	if _, err := ParseBridge("obfs4 nonsense"); err == nil {
		t.Fatal("ParseBridge accepted a bad line")
	}
}

func TestSOCKS5ModeDialsOnlyTCP(t *testing.T) {
	proxyAddr, used := socks5(t)
	b := newTestNode(t, Config{ListenAddrs: []string{quicAddr, wsAddr}})
	a := newTestNode(t, Config{SOCKS5: proxyAddr})
	if err := a.Connect(testCtx(t, 5*time.Second), b.PeerID(), b.Addrs()); err == nil {
		t.Fatal("connected over QUIC/WebSocket, around the SOCKS5 proxy")
	}
	if used.Load() != 0 {
		t.Fatal("the proxy carried a non-TCP dial")
	}
}

func FuzzParseBridge(f *testing.F) {
	f.Add("obfs4 198.19.1.10:8443 12D3KooWQuxxMTMtSQpJD3ft4Tfk1gpTptvmeeJ7NKQ1NugmfX2k cert=AbC+/x iat-mode=0")
	f.Add("obfs4 [::1]:1 12D3KooWQuxxMTMtSQpJD3ft4Tfk1gpTptvmeeJ7NKQ1NugmfX2k")
	f.Fuzz(func(t *testing.T, line string) {
		b, err := ParseBridge(line)
		if err != nil {
			return
		}
		b2, err := ParseBridge(b.String())
		if err != nil || b2 != b {
			t.Fatalf("%q → %+v → %q → %+v, %v", line, b, b.String(), b2, err)
		}
	})
}
