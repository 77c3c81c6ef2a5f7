package testnet

import (
	"strings"
	"testing"
	"time"
)

// Encrypted Client Hello in the lab (issue 15, `up --ech`): what the
// censor sees of a secure WebSocket with ECH, and a censor who blocks the
// node's own server name.

// labTLSName is carol's --tls-name in every pair (newPair).
const labTLSName = "static.cdn-example.net"

// tWSSECH is secure WebSocket with carol's ECH on: alice learns the ECH
// config from carol's invite (the ECH twin of her /tls/sni/NAME/ws
// address) and dials with it.
var tWSSECH = labTransport{Name: "wss+ech", listen: tWSS.listen, extra: []string{"--ech"}}

// InnerNameBlocklist drops every flow whose bytes carry one of names (an
// SNI, a Host header…): a censor who has learnt a node's server name, or
// a domain, and blocks it by SNI. With ECH the name travels encrypted.
func InnerNameBlocklist(names ...string) CensorModel {
	return CensorModel{"inner-name-blocklist", "flows carrying the contact's own server name dropped", func(l *Lab) error {
		for _, n := range names {
			if _, err := l.Censor.Run("iptables", "-A", "FORWARD", "-m", "string", "--algo", "bm", "--icase", "--string", n,
				"-j", "CONNMARK", "--set-mark", "0x1"); err != nil {
				return err
			}
		}
		_, err := l.Censor.Run("iptables", "-A", "FORWARD", "-m", "connmark", "--mark", "0x1", "-j", "DROP")
		return err
	}}
}

// With ECH on, every ClientHello alice sends carol names only the cover
// name, carol's server name appears in no plaintext byte, and the message
// is delivered; under a censor blocking carol's server name, plain secure
// WebSocket is blocked and ECH gets through.
func TestLabECH(t *testing.T) {
	RequireRoot(t, "nft", "iptables", "tc")
	t.Run("wire", func(t *testing.T) {
		t.Parallel()
		needTshark(t)
		p := newPair(t, tWSSECH)
		capt := startCapture(t, p.lab, "tcp port 443", p.ah.IP+":443")
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered over wss with ECH\n%s", p.a.Log())
		}
		file := capt.stop(t)
		hs := clientHellos(t, file)
		if len(hs) == 0 {
			t.Fatal("no ClientHello captured: the test would prove nothing")
		}
		for _, h := range hs {
			t.Logf("| samizdat secure WebSocket with ECH | %s | %s | %s | %s |", h.JA4, h.JA3, h.ALPN, h.SNI)
			if h.SNI != "cloudflare-ech.com" {
				t.Errorf("ClientHello SNI %q, want the cover name only", h.SNI)
			}
		}
		if ext := tsharkFields(t, file, "tls.handshake.type == 1", "tls.handshake.extension.type"); len(ext) == 0 || !strings.Contains(ext[0][0], "65037") {
			t.Errorf("no encrypted_client_hello extension (0xfe0d) in the ClientHello: %v", ext)
		}
		for key, b := range flows(t, file) {
			if strings.Contains(strings.ToLower(string(b)), labTLSName) {
				t.Errorf("%s: carol's server name %q in plaintext", key, labTLSName)
			}
		}
	})
	t.Run("inner-name-blocked/plain-wss-blocked", func(t *testing.T) {
		t.Parallel()
		// The control: the censor does block carol's name without ECH.
		p := newPair(t, tWSS)
		p.lab.Apply(InnerNameBlocklist(labTLSName))
		if r := p.run(t, 0, 15*time.Second); r.Delivered {
			t.Fatal("delivered over plain wss through a censor blocking carol's server name")
		}
	})
	t.Run("inner-name-blocked/ech-delivers", func(t *testing.T) {
		t.Parallel()
		p := newPair(t, tWSSECH)
		p.lab.Apply(InnerNameBlocklist(labTLSName))
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			t.Fatalf("not delivered over wss with ECH past the name blocklist\n%s", p.a.Log())
		}
		p.carolGot(t, "first words through the censor")
	})
}
