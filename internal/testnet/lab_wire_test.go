package testnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What the censor sees on the wire (issue 15): packet captures with tshark
// on the censor's inside bridge, scanned for anything naming the software,
// and the ClientHello fingerprints (JA3, JA4) of ours and of common clients.

// capture is tshark running in the censor namespace, writing a pcap.
type capture struct {
	proc   *Proc
	file   string
	lab    *Lab
	canary string
}

func needTshark(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("lab test: needs tshark (apt-get install tshark)")
	}
}

// startCapture captures what crosses the censor's inside bridge (every
// flow between inside and outside), with a capture filter, and returns
// once the capture runs: the censor pokes canary (an inside host's
// IP:port matching the filter) until tshark reports a packet.
func startCapture(t *testing.T, l *Lab, filter, canary string) *capture {
	t.Helper()
	needTshark(t)
	c := &capture{file: filepath.Join(t.TempDir(), "cap.pcap"), lab: l, canary: canary}
	args := []string{"-i", "brin", "-w", c.file, "-F", "pcap", "-P", "-l"}
	if filter != "" {
		args = append(args, "-f", filter)
	}
	c.proc = l.Censor.Start(nil, "tshark", args...)
	c.sync(t)
	return c
}

// sync pokes the canary until tshark has reported a packet of it: then
// every packet before it has been captured too.
func (c *capture) sync(t *testing.T) {
	t.Helper()
	lines := strings.Count(c.proc.Stdout.String(), "\n")
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _ = runHelper(t, c.lab.Censor, "SZ_NETNS_HELPER=dial", "SZ_ADDR="+c.canary) // refused: only its SYN matters
		for wait := time.Now().Add(200 * time.Millisecond); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
			if strings.Count(c.proc.Stdout.String(), "\n") > lines && strings.Contains(c.proc.Stdout.String()[len(c.proc.Stdout.String())/2:], "198.18.1.1 ") {
				return
			}
		}
		select {
		case <-c.proc.Done():
			t.Fatalf("tshark exited: %v %s", c.proc.Err(), c.proc.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark captured no canary: %s", c.proc.Stderr)
		}
	}
}

// stop ends the capture and returns the pcap's path.
func (c *capture) stop(t *testing.T) string {
	t.Helper()
	c.sync(t)
	c.proc.Stop(10 * time.Second)
	if st, err := os.Stat(c.file); err == nil && st.Size() == 0 {
		t.Fatalf("empty capture: %s", c.proc.Stderr)
	}
	if _, err := os.Stat(c.file); err != nil {
		t.Fatalf("no capture: %v %s", err, c.proc.Stderr)
	}
	return c.file
}

// tsharkFields reads fields of the packets matching a display filter, one
// line per packet, fields separated by tabs. Plain WebSocket on 80 and QUIC
// on 4001 are decoded as such.
func tsharkFields(t *testing.T, file, filter string, fields ...string) [][]string {
	t.Helper()
	return tsharkArgs(t, file, nil, filter, fields...)
}

func tsharkArgs(t *testing.T, file string, extra []string, filter string, fields ...string) [][]string {
	t.Helper()
	args := append([]string{"-r", file, "-d", "udp.port==4001,quic", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"}, extra...)
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	return rows
}

// flows returns the payload bytes each flow carried in the capture, per
// direction: "tcp N →" from the side that spoke first, "tcp N ←" back (N
// numbers flows in order of appearance). It reads the pcap itself rather
// than through tshark's dissectors, which keep some payloads (SOCKS…) to
// themselves: every byte above TCP and UDP is scanned.
func flows(t *testing.T, file string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("%s: not a little-endian Ethernet pcap", file)
	}
	out := map[string][]byte{}
	ids := map[string]int{}
	firstSrc := map[string]string{}
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		if off+16+n > len(b) {
			break
		}
		pkt := b[off+16 : off+16+n]
		off += 16 + n
		if len(pkt) < 14+20 || binary.BigEndian.Uint16(pkt[12:]) != 0x0800 {
			continue
		}
		ip := pkt[14:]
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if total > len(ip) || ihl < 20 || total < ihl {
			continue
		}
		proto, src, dst := ip[9], net.IP(ip[12:16]).String(), net.IP(ip[16:20]).String()
		l4 := ip[ihl:total]
		var payload []byte
		var name string
		switch {
		case proto == 6 && len(l4) >= 20:
			payload, name = l4[int(l4[12]>>4)*4:], "tcp"
		case proto == 17 && len(l4) >= 8:
			payload, name = l4[8:], "udp"
		default:
			continue
		}
		if len(payload) == 0 {
			continue
		}
		a := fmt.Sprintf("%s:%d", src, binary.BigEndian.Uint16(l4[0:]))
		z := fmt.Sprintf("%s:%d", dst, binary.BigEndian.Uint16(l4[2:]))
		conv := name + " " + min(a, z) + " " + max(a, z)
		if _, ok := ids[conv]; !ok {
			ids[conv] = len(ids)
			firstSrc[conv] = a
		}
		dir := " →"
		if firstSrc[conv] != a {
			dir = " ←"
		}
		key := fmt.Sprintf("%s %d%s", name, ids[conv], dir)
		out[key] = append(out[key], payload...)
	}
	return out
}

// hello is one ClientHello as tshark decodes it (TLS over TCP, or inside a
// QUIC Initial).
type hello struct {
	SNI, ALPN, JA3, JA3Full, JA4 string
}

func clientHellos(t *testing.T, file string) []hello {
	t.Helper()
	var out []hello
	rows := tsharkFields(t, file, "tls.handshake.type == 1",
		"tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str", "tls.handshake.ja3", "tls.handshake.ja3_full",
		"tls.handshake.ciphersuite", "tls.handshake.extension.type", "tls.handshake.sig_hash_alg", "tls.handshake.extensions.supported_version", "quic.version")
	for _, r := range rows {
		for len(r) < 9 {
			r = append(r, "")
		}
		h := hello{SNI: r[0], ALPN: r[1], JA3: r[2], JA3Full: r[3]}
		h.JA4 = ja4(r[8] != "", r[0] != "", r[1], r[4], r[5], r[6], r[7])
		out = append(out, h)
	}
	return out
}

// ja4 computes the JA4 fingerprint (FoxIO's spec) from tshark's fields:
// protocol, TLS version, SNI or not, counts of ciphers and extensions, ALPN
// first and last characters; then the truncated SHA-256 of the sorted
// ciphers, and of the sorted extensions (less SNI and ALPN) with the
// signature algorithms in their order. GREASE values are left out.
func ja4(quic, sni bool, alpn, ciphers, exts, sigs, versions string) string {
	list := func(s string) []string {
		var out []string
		for _, v := range strings.Split(s, ",") {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), map[bool]int{true: 16, false: 10}[strings.HasPrefix(v, "0x")], 32)
			if err != nil || n&0x0f0f == 0x0a0a && n>>8 == n&0xff { // GREASE
				continue
			}
			out = append(out, fmt.Sprintf("%04x", n))
		}
		return out
	}
	cs, es, ss, vs := list(ciphers), list(exts), list(sigs), list(versions)
	proto := "t"
	if quic {
		proto = "q"
	}
	ver := "12"
	if slices.Contains(vs, "0304") {
		ver = "13"
	}
	d := "i"
	if sni {
		d = "d"
	}
	a := "00"
	if first, _, _ := strings.Cut(alpn, ","); first != "" {
		a = first[:1] + first[len(first)-1:]
	}
	h12 := func(s string) string {
		if s == "" {
			return "000000000000"
		}
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])[:12]
	}
	sc := slices.Sorted(slices.Values(cs))
	var se []string
	for _, e := range es {
		if e != "0000" && e != "0010" {
			se = append(se, e)
		}
	}
	slices.Sort(se)
	extPart := strings.Join(se, ",")
	if len(ss) > 0 {
		extPart += "_" + strings.Join(ss, ",")
	}
	return fmt.Sprintf("%s%s%s%02d%02d%s_%s_%s", proto, ver, d, min(len(cs), 99), min(len(es), 99), a, h12(strings.Join(sc, ",")), h12(extPart))
}

// Strings that must never appear in plaintext: the software's name and its
// protocol ids. libp2p's own negotiation strings are known fingerprints of
// plain TCP, QUIC and WebSocket (DESIGN §6), listed, not failed on.
var (
	forbiddenPlain = []string{"samizdat"}
	libp2pStrings  = []string{"/multistream/1.0.0", "/noise", "/yamux/1.0.0", "libp2p", "/tls/1.0.0"}
)

// Every transport's traffic, as the censor sees it crossing the border
// while alice reaches carol and delivers a message, names neither the
// software nor its protocols: not in the SNI, the ALPN, HTTP headers, the
// WebSocket path, a certificate, or any other plaintext byte.
func TestLabFirstFlightNamesNothing(t *testing.T) {
	RequireRoot(t, "nft", "iptables", "tc")
	needTshark(t)
	obfs4proxy(t)
	// The control: carol with the SNI samizdat had before issue 15; the
	// scan must find it.
	oldSNI := tWSS
	oldSNI.Name, oldSNI.extra = "control: wss with the old SNI", []string{"--tls-name", "www.samizdat.invalid"}
	for _, tr := range []labTransport{tTCP, tQUIC, tWS, tWSS, tWSSECH, tObfs4, tSOCKS, tWebRTC, oldSNI} {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, tr)
			capt := startCapture(t, p.lab, "", p.ah.IP+":9")
			if r := p.run(t, 0, 30*time.Second); !r.Delivered {
				t.Fatalf("not delivered over %s\n%s", tr.Name, p.a.Log())
			}
			file := capt.stop(t)
			found, known, n := scanCapture(t, file)
			if n == 0 {
				t.Fatal("captured nothing: the test would prove nothing")
			}
			if tr.Name == oldSNI.Name {
				if len(found) == 0 {
					t.Fatal("the scan does not see the old SNI: it proves nothing")
				}
				t.Logf("control found: %v", found)
				return
			}
			for _, f := range found {
				t.Error(f)
			}
			if tr.broker {
				// Alice reaches the broker over wss: WebRTC's own flows are
				// the UDP ones (STUN, then DTLS).
				checkWebRTCFlight(t, file, knownInUDP(t, file))
			}
			t.Logf("%s: %d flows; known libp2p fingerprints in plaintext: %v", tr.Name, n, known)
		})
	}
}

// scanCapture looks for forbidden strings in every payload byte and in
// the decoded ClientHellos (QUIC's too) of a capture; it returns what it
// found, the libp2p strings seen, and the number of flows.
func scanCapture(t *testing.T, file string) (found, known []string, n int) {
	t.Helper()
	fl := flows(t, file)
	for key, b := range fl {
		low := bytes.ToLower(b)
		for _, s := range forbiddenPlain {
			if i := bytes.Index(low, []byte(s)); i >= 0 {
				found = append(found, fmt.Sprintf("%s: %q in plaintext at byte %d: …%q…", key, s, i, b[max(0, i-40):min(len(b), i+40)]))
			}
		}
		for _, s := range libp2pStrings {
			if bytes.Contains(b, []byte(s)) && !slices.Contains(known, s) {
				known = append(known, s)
			}
		}
	}
	for _, h := range clientHellos(t, file) {
		for _, s := range forbiddenPlain {
			if strings.Contains(strings.ToLower(h.SNI+" "+h.ALPN), s) {
				found = append(found, fmt.Sprintf("ClientHello SNI %q ALPN %q names the software", h.SNI, h.ALPN))
			}
		}
		if strings.Contains(h.ALPN, "libp2p") && !slices.Contains(known, "ALPN libp2p") {
			known = append(known, "ALPN libp2p") // QUIC's, readable by anyone who decrypts Initial packets
		}
		t.Logf("ClientHello: SNI %q ALPN %q JA3 %s JA4 %s", h.SNI, h.ALPN, h.JA3, h.JA4)
	}
	slices.Sort(known)
	return found, known, len(fl)
}

// The helper modes that make ClientHellos of common clients from inside a
// namespace: Go's net/http client, and Go's crypto/tls configured as
// samizdat was before issue 15 (ALPN "http/1.1" only, its old SNI).
func helloClient(mode, addr, name string) error {
	switch mode {
	case "nethttp":
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		tr.Proxy = nil
		_, port, _ := net.SplitHostPort(addr)
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := cl.Get("https://" + net.JoinHostPort(name, port) + "/")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	case "oldsamizdat":
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{InsecureSkipVerify: true, ServerName: name, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
		if err != nil {
			return err
		}
		return c.Close()
	}
	return fmt.Errorf("unknown hello mode %q", mode)
}

// runHelper runs the test binary in ns in a helper mode and returns its
// stdout.
func runHelper(t *testing.T, ns *Netns, env ...string) (string, error) {
	t.Helper()
	cmd := ns.Command(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, errb.String())
	}
	return string(out), nil
}

// The ClientHello of our secure WebSocket is that of Go's net/http client
// (the most common fingerprint the standard library can make: every Go
// program's HTTPS), not the one samizdat sent before issue 15; Debian's
// Chromium is measured for the table in docs/CENSORSHIP.md.
func TestLabClientHelloFingerprints(t *testing.T) {
	RequireRoot(t, "nft", "iptables", "tc")
	needTshark(t)
	p := newPair(t, tWSS)
	const name = "static.cdn-example.net" // carol's --tls-name (newPair)
	target := p.ch.IP + ":443"
	measure := func(label string, run func() error) hello {
		t.Helper()
		c := startCapture(t, p.lab, "tcp port 443", p.ah.IP+":443")
		if err := run(); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		file := c.stop(t)
		hs := clientHellos(t, file)
		if len(hs) == 0 {
			out, _ := exec.Command("tshark", "-r", file).CombinedOutput()
			t.Fatalf("%s: no ClientHello captured:\n%s\ndumpcap: %s", label, tail(string(out), 30), c.proc.Stderr)
		}
		h := hs[0]
		t.Logf("| %s | %s | %s | %s | %s |", label, h.JA4, h.JA3, h.ALPN, h.SNI)
		t.Logf("%s JA3 string: %s", label, h.JA3Full)
		return h
	}
	ours := measure("samizdat (secure WebSocket)", func() error {
		if r := p.run(t, 0, 30*time.Second); !r.Delivered {
			return fmt.Errorf("not delivered\n%s", p.a.Log())
		}
		return nil
	})
	hello := func(mode string) func() error {
		return func() error {
			_, err := runHelper(t, p.ah.Netns, "SZ_NETNS_HELPER=hello", "SZ_MODE="+mode, "SZ_ADDR="+target, "SZ_NAME="+name)
			return err
		}
	}
	goHTTP := measure("Go net/http client", hello("nethttp"))
	old := measure("samizdat before issue 15", hello("oldsamizdat"))
	if bin, err := exec.LookPath("chromium"); err == nil {
		measure("Debian Chromium (headless)", func() error {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			cmd := p.ah.Command(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--no-first-run", "--user-data-dir="+t.TempDir(), "--ignore-certificate-errors",
				"--host-resolver-rules=MAP "+name+" "+p.ch.IP, "--dump-dom", "https://"+name+"/")
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		})
	} else {
		t.Log("chromium not installed: its row is not measured (apt-get install chromium)")
	}
	if ours.JA4 != goHTTP.JA4 || ours.JA3 != goHTTP.JA3 {
		t.Errorf("our ClientHello is not Go net/http's:\nours   %s %s\nnethttp %s %s", ours.JA4, ours.JA3Full, goHTTP.JA4, goHTTP.JA3Full)
	}
	if old.JA4 == ours.JA4 {
		t.Errorf("the old fingerprint %s is still ours", old.JA4)
	}
}
