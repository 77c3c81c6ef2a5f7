package p2p

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p/tlsface"
	"github.com/samizdat-im/samizdat/internal/p2p/wss"
)

// probe sends one raw HTTP/1.1 request over TLS to addr and returns the
// response with the Date header removed (the only field that may differ
// between two servers answering the same request), and the negotiated ALPN.
func probe(t *testing.T, addr, name, req string) (string, string) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, ServerName: name, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("tls to %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "error: " + err.Error(), c.ConnectionState().NegotiatedProtocol
	}
	resp.Header.Del("Date")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
	_ = resp.Header.Write(&b)
	b.Write(body)
	return b.String(), c.ConnectionState().NegotiatedProtocol
}

// ProbeRequests are what an active prober asks a suspected node: the usual
// paths, and WebSocket upgrades as a samizdat client would send them but
// with the wrong key (path).
func probeRequests(host string) map[string]string {
	upgrade := func(path string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	}
	get := func(method, path string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: Mozilla/5.0\r\nConnection: close\r\n\r\n"
	}
	return map[string]string{
		"GET /":             get("GET", "/"),
		"HEAD /":            get("HEAD", "/"),
		"GET /index.html":   get("GET", "/index.html"),
		"GET /favicon.ico":  get("GET", "/favicon.ico"),
		"GET /robots.txt":   get("GET", "/robots.txt"),
		"GET /wp-login.php": get("GET", "/wp-login.php"),
		"OPTIONS *":         get("OPTIONS", "*"),
		"POST /":            "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
		"upgrade /":         upgrade("/"),
		"upgrade /ws":       upgrade("/ws"),
		"upgrade wrong key": upgrade(wss.Path("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN")),
		"garbage":           "\x00\x01samizdat\r\n\r\n",
	}
}

// referenceServer is a plain static web server: Go's file server over TLS
// (HTTP/1.1), serving the same files with a certificate of the same shape.
func referenceServer(t *testing.T, name string, identity []byte) string {
	t.Helper()
	id, err := tlsface.Parse(identity)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	srv := &http.Server{Handler: http.FileServerFS(tlsface.SiteFS(name, id.Seed)), Protocols: protos, ErrorLog: wss.DiscardLog,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{id.Cert}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// An active prober gets from a node's HTTPS port exactly what a static web
// server gives, for the usual paths and for WebSocket upgrades with a wrong
// key; only the node's own path upgrades.
func TestActiveProbeLooksLikeStaticServer(t *testing.T) {
	const name = "www.example.org"
	identity, err := NewTLSIdentity(name, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t, Config{ListenAddrs: []string{wssAddr}, TLSName: name, TLSIdentity: identity})
	var nodeAddr string
	for _, a := range n.Addrs() {
		if strings.Contains(a, "/tls/sni/") {
			f := strings.Split(a, "/")
			nodeAddr = f[2] + ":" + f[4]
		}
	}
	ref := referenceServer(t, name, identity)
	for what, req := range probeRequests(name) {
		got, gotALPN := probe(t, nodeAddr, name, req)
		want, wantALPN := probe(t, ref, name, req)
		if got != want || gotALPN != wantALPN {
			t.Errorf("%s: node answers\n%s\n(ALPN %q), a static server\n%s\n(ALPN %q)", what, got, gotALPN, want, wantALPN)
		}
		if strings.Contains(strings.ToLower(got), "samizdat") {
			t.Errorf("%s: the answer names the software: %s", what, got)
		}
	}
	// Many connections from one address are all answered: a static server
	// does not cut a client off (libp2p's per-IP connection limits and
	// rate limits apply only to connections that upgrade).
	for i := range 40 {
		if got, _ := probe(t, nodeAddr, name, probeRequests(name)["GET /"]); !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("connection %d: %s", i, got)
		}
	}
	// The control: the node's own path does upgrade (the probes above
	// would have caught nothing if no path did).
	host := name
	req := "GET " + wss.Path(n.host.ID()) + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if got, _ := probe(t, nodeAddr, name, req); !strings.HasPrefix(got, "HTTP/1.1 101") {
		t.Fatalf("the node's own upgrade path: %s", got)
	}
}
