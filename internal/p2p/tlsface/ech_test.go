package tlsface

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// A crypto/tls client given our ECH config list reaches a server holding
// the key with ECH accepted: the server sees the inner name, the outer
// ClientHello carries the public name only.
func TestECHHandshake(t *testing.T) {
	keyPEM, err := NewECH("cover.example.net")
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseECH(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if name, err := ECHConfigListPublicName(e.ConfigList); err != nil || name != "cover.example.net" {
		t.Fatalf("public name %q %v", name, err)
	}
	id, err := New("inner.example.org", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Parse(id)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{p.Cert}, EncryptedClientHelloKeys: []tls.EncryptedClientHelloKey{e.Key}}
	cliCfg := func(list []byte) *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, ServerName: "inner.example.org", EncryptedClientHelloConfigList: list,
			MinVersion:                          tls.VersionTLS13,
			EncryptedClientHelloRejectionVerify: func(tls.ConnectionState) error { return errors.New("ech rejected") }}
	}
	handshake := func(cli *tls.Config) (firstFlight string, srv tls.ConnectionState, cerr error) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		sc := srvCfg.Clone()
		done := make(chan tls.ConnectionState, 1)
		go func() {
			s := tls.Server(b, sc)
			_ = s.Handshake()
			done <- s.ConnectionState()
			s.Close()
		}()
		rec := &recordConn{Conn: a}
		c := tls.Client(rec, cli)
		cerr = c.Handshake()
		firstFlight = rec.first.String()
		if cerr == nil {
			c.Close()
		} else {
			a.Close()
		}
		return firstFlight, <-done, cerr
	}
	outer, st, err := handshake(cliCfg(e.ConfigList))
	if err != nil {
		t.Fatal(err)
	}
	if !st.ECHAccepted || st.ServerName != "inner.example.org" {
		t.Fatalf("server: ECH accepted %v, name %q", st.ECHAccepted, st.ServerName)
	}
	if !strings.Contains(outer, "cover.example.net") || strings.Contains(outer, "inner.example.org") {
		t.Fatalf("the ClientHello on the wire does not show the public name only:\n%q", outer)
	}
	// Another node's config: the server rejects ECH and the client fails
	// rather than falling back to the inner name in the clear.
	other, _ := NewECH("cover.example.net")
	oe, _ := ParseECH(other)
	if _, _, err := handshake(cliCfg(oe.ConfigList)); err == nil {
		t.Fatal("handshake with a stranger's ECH config succeeded")
	}
	// Tampered keys are refused.
	bad := bytes.Replace(keyPEM, []byte("ECH PRIVATE KEY"), []byte("ECH OTHER"), 2)
	if _, err := ParseECH(bad); !errors.Is(err, ErrECH) {
		t.Fatalf("ParseECH without a key: %v", err)
	}
	if _, err := ECHConfigListPublicName(e.ConfigList[:10]); !errors.Is(err, ErrECH) {
		t.Fatalf("truncated list: %v", err)
	}
}

// recordConn keeps what the client writes before it first reads: its
// ClientHello as a censor sees it.
type recordConn struct {
	net.Conn
	mu    sync.Mutex
	read  bool
	first bytes.Buffer
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if !c.read {
		c.first.Write(b)
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recordConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	c.read = true
	c.mu.Unlock()
	return c.Conn.Read(b)
}
