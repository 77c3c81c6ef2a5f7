package testnet

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// The active prober (issue 15): the censor connects to a server it saw
// traffic go to, the way the Great Firewall probes suspected proxies, and
// blocks it unless it answers exactly as a static web server does. It
// mirrors the server's pages into a reference static server (Go's file
// server, HTTP/1.1, over TLS if the server spoke TLS) and compares the two
// answers to the usual requests, to WebSocket upgrades with a wrong key
// (path), and to a replay of a captured client flight.

// probeReport is what the prober found about one server.
type probeReport struct {
	Target  string   `json:"target"`
	Kind    string   `json:"kind"` // "https", "http" or "other"
	Static  bool     `json:"static"`
	Diffs   []string `json:"diffs,omitempty"`
	Insider string   `json:"insider,omitempty"` // status of an upgrade to the real path (a control)
	Replay  string   `json:"replay,omitempty"`
}

const probeTimeout = 3 * time.Second

// runProbe is the "probe" helper mode, run in the censor's namespace: it
// prints a probeReport for addr. name is the SNI the censor saw; replay a
// file of captured client bytes (optional); insider an upgrade path only
// the server's legitimate clients know (optional, a control).
func runProbe(addr, name, replay, insider string) int {
	r := probeServer(addr, name, replay, insider)
	_ = json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

func probeServer(addr, name, replayFile, insider string) probeReport {
	r := probeReport{Target: addr}
	tlsCfg := &tls.Config{InsecureSkipVerify: true, ServerName: name, NextProtos: []string{"h2", "http/1.1"}}
	dialNode := func() (net.Conn, string, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: probeTimeout}, "tcp", addr, tlsCfg)
		if err != nil {
			return nil, "", err
		}
		return c, c.ConnectionState().NegotiatedProtocol, nil
	}
	if c, _, err := dialNode(); err == nil {
		c.Close()
		r.Kind = "https"
	} else {
		dialNode = func() (net.Conn, string, error) {
			c, err := net.DialTimeout("tcp", addr, probeTimeout)
			return c, "", err
		}
		first, err := exchange(dialNode, "GET / HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n")
		if err != nil || !strings.HasPrefix(first, "HTTP/1.") {
			r.Kind = "other"
			r.Diffs = append(r.Diffs, fmt.Sprintf("not a web server: answers GET / with %q (%v)", trim(first), err))
			return r
		}
		r.Kind = "http"
	}

	// Mirror the site into a reference static server.
	files := fstest.MapFS{}
	for f, path := range map[string]string{"index.html": "/", "robots.txt": "/robots.txt"} {
		resp, body, err := fetch(dialNode, name, path)
		if err != nil || resp.StatusCode != 200 {
			continue
		}
		mod, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
		files[f] = &fstest.MapFile{Data: body, ModTime: mod, Mode: 0o644}
	}
	ref, stop, err := referenceServer(files, r.Kind == "https", name)
	if err != nil {
		r.Diffs = append(r.Diffs, "reference server: "+err.Error())
		return r
	}
	defer stop()
	dialRef := func() (net.Conn, string, error) {
		if r.Kind == "https" {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: probeTimeout}, "tcp", ref, tlsCfg)
			if err != nil {
				return nil, "", err
			}
			return c, c.ConnectionState().NegotiatedProtocol, nil
		}
		c, err := net.DialTimeout("tcp", ref, probeTimeout)
		return c, "", err
	}

	// The usual requests, and upgrades with wrong keys.
	for _, pr := range probeSet(name) {
		got, gotProto := roundTrip(dialNode, pr.req)
		want, wantProto := roundTrip(dialRef, pr.req)
		if got != want || gotProto != wantProto {
			r.Diffs = append(r.Diffs, fmt.Sprintf("%s: server %q (ALPN %q), static server %q (ALPN %q)", pr.what, trim(got), gotProto, trim(want), wantProto))
		}
	}
	if insider != "" {
		got, _ := roundTrip(dialNode, upgradeRequest(name, insider))
		r.Insider, _, _ = strings.Cut(got, "\n")
	}
	if replayFile != "" {
		b, err := os.ReadFile(replayFile)
		if err == nil && len(b) > 0 {
			raw := func(a string) (net.Conn, string, error) {
				c, err := net.DialTimeout("tcp", a, probeTimeout)
				return c, "", err
			}
			got := replayShape(func() (net.Conn, string, error) { return raw(addr) }, b)
			want := replayShape(func() (net.Conn, string, error) { return raw(ref) }, b)
			r.Replay = got
			if got != want {
				r.Diffs = append(r.Diffs, fmt.Sprintf("replay: server %s, static server %s", got, want))
			}
		}
	}
	r.Static = len(r.Diffs) == 0
	return r
}

type probeReq struct{ what, req string }

func upgradeRequest(host, path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n\r\n"
}

func probeSet(host string) []probeReq {
	get := func(method, path string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	}
	var key [12]byte
	_, _ = rand.Read(key[:])
	return []probeReq{
		{"GET /", get("GET", "/")},
		{"HEAD /", get("HEAD", "/")},
		{"GET /index.html", get("GET", "/index.html")},
		{"GET /favicon.ico", get("GET", "/favicon.ico")},
		{"GET /robots.txt", get("GET", "/robots.txt")},
		{"GET /.well-known/security.txt", get("GET", "/.well-known/security.txt")},
		{"GET /admin", get("GET", "/admin")},
		{"OPTIONS *", get("OPTIONS", "*")},
		{"POST /", "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"},
		{"HTTP/1.0 GET /", "GET / HTTP/1.0\r\n\r\n"},
		{"WebSocket upgrade /", upgradeRequest(host, "/")},
		{"WebSocket upgrade, wrong key", upgradeRequest(host, "/"+hex.EncodeToString(key[:]))},
		{"garbage", "\x16\x03\x01\x00\x05hello\r\n\r\n"},
	}
}

// roundTrip sends one request on a fresh connection and returns the answer
// with the Date header (the only field two servers may honestly differ in)
// left out, and the negotiated ALPN.
func roundTrip(dial func() (net.Conn, string, error), req string) (string, string) {
	c, proto, err := dial()
	if err != nil {
		return "dial: " + err.Error(), ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		return "write: " + err.Error(), proto
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return "no HTTP answer: " + errClass(err), proto
	}
	defer resp.Body.Close()
	resp.Header.Del("Date")
	body, _ := io.ReadAll(resp.Body)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
	_ = resp.Header.Write(&b)
	b.Write(body)
	return b.String(), proto
}

func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "silence"
	}
	return "error"
}

// exchange sends req and returns what comes back within probeTimeout.
func exchange(dial func() (net.Conn, string, error), req string) (string, error) {
	c, _, err := dial()
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(c, 4096))
	if len(b) > 0 {
		err = nil
	}
	return string(b), err
}

func fetch(dial func() (net.Conn, string, error), host, path string) (*http.Response, []byte, error) {
	c, _, err := dial()
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// replayShape sends captured client bytes and describes the answer by its
// TLS record types and how the server ended (record lengths depend on the
// certificate, which the reference cannot share).
func replayShape(dial func() (net.Conn, string, error), b []byte) string {
	c, _, err := dial()
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	go func() { _, _ = c.Write(b) }()
	got, err := io.ReadAll(c)
	var types []string
	for len(got) >= 5 {
		n := int(got[3])<<8 | int(got[4])
		types = append(types, fmt.Sprint(got[0]))
		if len(got) < 5+n {
			break
		}
		got = got[5+n:]
	}
	end := "closed"
	if err != nil {
		end = errClass(err)
	}
	return "records [" + strings.Join(types, " ") + "], then " + end
}

// referenceServer serves files like a static web server: Go's file
// server, HTTP/1.1 only, on the prober's loopback.
func referenceServer(files fstest.MapFS, useTLS bool, name string) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	srv := &http.Server{Handler: http.FileServerFS(files), Protocols: protos, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	if useTLS {
		cert, err := selfSigned(name)
		if err != nil {
			ln.Close()
			return "", nil, err
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { _ = srv.Serve(ln) }()
	}
	return ln.Addr().String(), func() { srv.Close() }, nil
}

func selfSigned(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// probe runs the prober in the censor's namespace against addr.
func (l *Lab) probe(t *testing.T, addr, name, replay, insider string) probeReport {
	t.Helper()
	out, err := runHelper(t, l.Censor, "SZ_NETNS_HELPER=probe", "SZ_ADDR="+addr, "SZ_NAME="+name, "SZ_REPLAY="+replay, "SZ_INSIDER="+insider)
	if err != nil {
		t.Fatalf("prober: %v", err)
	}
	var r probeReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("prober output %q: %v", out, err)
	}
	return r
}

// ActiveProber is the censor model: it probes every TCP service the
// contact listens on (as a censor does after seeing a flow to it) and
// blocks the contact's IP unless every one answers as a static web server.
// UDP services are not probed (the DPI model is the one that drops UDP).
func activeProber(t *testing.T, ip string, ports []string, name string) CensorModel {
	return CensorModel{"active-prober", "probes each TCP service seen; blocks the IP unless all answer as a static web server", func(l *Lab) error {
		for _, port := range ports {
			r := l.probe(t, net.JoinHostPort(ip, port), name, "", "")
			t.Logf("prober: %s %s static=%v %v", r.Target, r.Kind, r.Static, r.Diffs)
			if !r.Static {
				return Blocklist(ip).apply(l)
			}
		}
		return nil
	}}
}

// tcpPorts lists the TCP ports of a transport's listen addresses (and the
// obfs4 bridge's).
func tcpPorts(tr labTransport, ip string) []string {
	var out []string
	for _, a := range tr.listen(ip) {
		f := strings.Split(a, "/")
		if len(f) > 4 && f[3] == "tcp" && !slices.Contains(out, f[4]) {
			out = append(out, f[4])
		}
	}
	if tr.obfs4 {
		out = append(out, "8443")
	}
	return out
}
