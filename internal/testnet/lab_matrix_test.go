//go:build lab

package testnet

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The censor model × transport matrix (docs/CENSORSHIP.md), as root:
//
//	go test -tags lab -run TestCensorMatrix -timeout 30m ./internal/testnet/ -matrix-out $PWD/docs/CENSORSHIP.md
//
// Each cell is a fresh lab: carol (outside) listens on one transport only,
// alice (inside) has her invite (and, for obfs4, her bridge line); the
// censor model is applied before alice starts. A cell records whether
// alice's first message is delivered within matrixTimeout, the time from
// alice's start to that delivery, and the latency (send → delivered, the
// recipient's ack back) of matrixMessages more messages.

var (
	matrixOut   = flag.String("matrix-out", "", "rewrite the matrix section of this markdown file")
	matrixOnly  = flag.String("matrix-only", "", "run only this transport's column (rows are then printed, not written)")
	matrixModel = flag.String("matrix-model", "", "run only this censor model's row (rows are then printed, not written)")
)

const (
	matrixTimeout  = 20 * time.Second
	matrixMessages = 10
)

func TestCensorMatrix(t *testing.T) {
	RequireRoot(t, "nft", "iptables", "tc")
	obfs4proxy(t)
	type model struct {
		name string
		m    func(t *testing.T, p *pair) CensorModel
	}
	models := []model{
		{"none", nil},
		{"dns-gone", func(*testing.T, *pair) CensorModel { return DNSGone }},
		{"blocklist (contact's IP)", func(_ *testing.T, p *pair) CensorModel { return Blocklist(p.ch.IP) }},
		{"dpi", func(*testing.T, *pair) CensorModel { return DPI }},
		{"dpi-udp", func(*testing.T, *pair) CensorModel { return DPIUDP }},
		{"throttle", func(*testing.T, *pair) CensorModel { return Throttle }},
		{"tls-443-only", func(*testing.T, *pair) CensorModel { return TLSOnly }},
		{"sni-fp-blocklist", func(*testing.T, *pair) CensorModel { return SNIBlocklist }},
		{"active-prober", func(t *testing.T, p *pair) CensorModel {
			// The prober probes the servers alice's flows go to: carol's
			// TCP services, or the SOCKS5 proxy alice goes through.
			if p.px != nil {
				return activeProber(t, p.px.IP, []string{"1080"}, "")
			}
			if p.bh != nil { // WebRTC: alice's TCP flows go to the broker
				return activeProber(t, p.bh.IP, []string{"443"}, "static.cdn-example.net")
			}
			return activeProber(t, p.ch.IP, tcpPorts(p.tr, p.ch.IP), "static.cdn-example.net")
		}},
		{"inner-name-blocklist", func(*testing.T, *pair) CensorModel { return InnerNameBlocklist(labTLSName) }},
		{"shutdown", func(*testing.T, *pair) CensorModel { return Shutdown }},
	}
	transports := []labTransport{tTCP, tQUIC, tWS, tWSS, tWSSECH, tObfs4, tSOCKS, tWebRTC}
	if *matrixOnly != "" {
		transports = slices.DeleteFunc(transports, func(tr labTransport) bool { return tr.Name != *matrixOnly })
	}
	if *matrixModel != "" {
		models = slices.DeleteFunc(models, func(m model) bool { return m.name != *matrixModel })
	}
	var rows bytes.Buffer
	fmt.Fprintf(&rows, "| censor model | transport | delivered | time to first delivery | latency p50 | latency p95 |\n|---|---|---|---|---|---|\n")
	for _, m := range models {
		for _, tr := range transports {
			var r result
			t.Run(m.name+"/"+tr.Name, func(t *testing.T) {
				p := newPair(t, tr)
				if m.m != nil {
					p.lab.Apply(m.m(t, p))
				}
				r = p.run(t, matrixMessages, matrixTimeout)
				t.Logf("%s × %s: %+v", m.name, tr.Name, r)
			})
			fmt.Fprintf(&rows, "| %s | %s | %s |\n", m.name, tr.Name, r.cells())
		}
	}
	t.Logf("\n%s", rows.String())
	if *matrixOut == "" || *matrixOnly != "" || *matrixModel != "" {
		return
	}
	host, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	section := fmt.Sprintf("Measured %s on %d CPUs (Linux %s), each cell a fresh lab; first-delivery timeout %v, %d messages for the latencies.\n\n%s",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), strings.TrimSpace(string(host)), matrixTimeout, matrixMessages, rows.String())
	if err := replaceSection(*matrixOut, section); err != nil {
		t.Fatal(err)
	}
}

func (r result) cells() string {
	if !r.Delivered {
		return fmt.Sprintf("no (none within %v) | – | – | –", matrixTimeout)
	}
	return fmt.Sprintf("yes | %s | %s | %s", ms(r.First), ms(percentile(r.Latencies, 50)), ms(percentile(r.Latencies, 95)))
}

func ms(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// replaceSection rewrites what lies between the matrix markers of a file.
func replaceSection(path, section string) error {
	const begin, end = "<!-- matrix:begin -->\n", "<!-- matrix:end -->"
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q … %q markers", path, begin, end)
	}
	return os.WriteFile(path, []byte(s[:i+len(begin)]+section+s[j:]), 0o644)
}
