package testnet

// The censorship lab (issue 7, DESIGN §2, §10): an "inside" network and an
// "outside" one, joined only through a "censor" namespace that routes
// between them and applies the censor models below with nftables,
// iptables' string match (through nft's xt compat) and tc.
//
//	inside hosts 198.18.1.10+ ── brin 198.18.1.1 ┐
//	                                              censor (forwarding, rules)
//	outside hosts 198.19.1.10+ ─ brout 198.19.1.1 ┘

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Lab link shaping: veths have no rate of their own, so the throttle model
// takes ReferenceRate as the full bandwidth and leaves ThrottledRate (20 %).
const (
	ReferenceRate = "10mbit"
	ThrottledRate = "2mbit"
	ThrottleLoss  = 5 // percent of forwarded packets dropped by the throttle model
)

// DPIStrings are the plaintext protocol-negotiation strings of stock
// libp2p that the DPI model fingerprints.
var DPIStrings = []string{"/multistream/1.0.0", "/noise", "/yamux"}

// Blocklisted ClientHellos of the SNIBlocklist model: any flow carrying the
// software's name (case-insensitive; the SNI of samizdat before issue 15
// was www.samizdat.invalid), and any ClientHello with the fingerprint that
// only samizdat sent: Go's crypto/tls offering ALPN "http/1.1" alone (JA4
// t13d1312h1_…, docs/CENSORSHIP.md). An ALPN extension is type 0x0010, its
// length, the list length, then each name with a length byte; only
// samizdat's old one is exactly "http/1.1".
var (
	BlockedKeywords    = []string{"samizdat"}
	BlockedFingerprint = "|0010000b000908|http/1.1"
)

// Lab is one censorship lab: the censor namespace and its two networks.
type Lab struct {
	Censor *Netns
	in     *Bridge
	out    *Bridge
	tb     testing.TB
	mu     sync.Mutex
	nIn    int
	nOut   int
	model  string
}

// Host is a lab host: a namespace with one interface, eth0, at IP.
type Host struct {
	*Netns
	IP string
}

// NewLab builds the censor namespace with the inside and outside bridges,
// forwarding on and no censorship yet. It needs root, nft, iptables and tc.
func NewLab(tb testing.TB) *Lab {
	tb.Helper()
	RequireRoot(tb, "nft", "iptables", "tc")
	c := NewNetns(tb, "cen")
	l := &Lab{Censor: c, tb: tb, model: "none"}
	l.in = c.AddBridge("brin", "198.18.1.1/24")
	l.out = c.AddBridge("brout", "198.19.1.1/24")
	c.EnableForwarding()
	// The censor sits on the border only: traffic bridged within one side
	// (br_netfilter would pass it through the IP hooks) is not its business.
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		c.MustRun("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
	}
	return l
}

// Inside adds a host on the inside network.
func (l *Lab) Inside(label string) *Host {
	l.tb.Helper()
	l.mu.Lock()
	l.nIn++
	ip := fmt.Sprintf("198.18.1.%d", 9+l.nIn)
	l.mu.Unlock()
	return l.host(l.in, label, ip, "198.18.1.1")
}

// Outside adds a host on the outside network.
func (l *Lab) Outside(label string) *Host {
	l.tb.Helper()
	l.mu.Lock()
	l.nOut++
	ip := fmt.Sprintf("198.19.1.%d", 9+l.nOut)
	l.mu.Unlock()
	return l.host(l.out, label, ip, "198.19.1.1")
}

func (l *Lab) host(br *Bridge, label, ip, gw string) *Host {
	n := NewNetns(l.tb, label)
	br.Attach(l.tb, n, "eth0", ip+"/24")
	n.Route("default", gw)
	return &Host{Netns: n, IP: ip}
}

// A CensorModel is one censor behaviour, applied to a lab with Lab.Apply.
type CensorModel struct {
	Name  string
	Doc   string
	apply func(l *Lab) error
}

// The censor models of issue 7. Blocklist takes the addresses to block.
var (
	// DNSGone: no resolver reachable (port 53 dropped both ways).
	DNSGone = CensorModel{"dns-gone", "no DNS: port 53 dropped", func(l *Lab) error {
		return l.nft(`meta l4proto { tcp, udp } th dport 53 drop`)
	}}
	// DPI drops every flow whose payload shows libp2p's plaintext
	// protocol negotiation, and all UDP (so QUIC).
	DPI = CensorModel{"dpi", "flows carrying " + strings.Join(DPIStrings, ", ") + " dropped; all UDP dropped", func(l *Lab) error {
		if err := l.dpiStrings(); err != nil {
			return err
		}
		return l.nft(`meta l4proto udp drop`)
	}}
	// DPIUDP is the DPI censor of a network where calls work: the same
	// libp2p strings fingerprinted, QUIC dropped (its long-header packets,
	// version 1: no handshake completes), and every other UDP flow (video
	// calls: STUN, DTLS, SRTP) let through.
	DPIUDP = CensorModel{"dpi-udp", "flows carrying " + strings.Join(DPIStrings, ", ") + " dropped; QUIC dropped; other UDP (calls) passes", func(l *Lab) error {
		if err := l.dpiStrings(); err != nil {
			return err
		}
		return l.nft(`meta l4proto udp @th,64,8 & 0x80 == 0x80 @th,72,32 0x00000001 drop`)
	}}
	// Throttle shapes inside↔outside traffic to 20 % of ReferenceRate and
	// drops ThrottleLoss % of packets.
	Throttle = CensorModel{"throttle", "20 % bandwidth (" + ThrottledRate + " of " + ReferenceRate + ") and 5 % loss", func(l *Lab) error {
		for _, dev := range []string{"brin", "brout"} {
			if _, err := l.Censor.Run("tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", ThrottledRate, "burst", "16kb", "latency", "200ms"); err != nil {
				return err
			}
		}
		return l.nft(fmt.Sprintf(`numgen random mod 100 < %d drop`, ThrottleLoss))
	}}
	// TLSOnly allows nothing but TCP port 443 whose first payload is a TLS
	// handshake record; other flows are dropped at their first payload.
	TLSOnly = CensorModel{"tls-443-only", "only TCP 443 whose first bytes are a TLS record", func(l *Lab) error {
		// (Port 443 either way, through a packet mark: nft 1.0.6 folds
		// "dport != 443 sport != 443" into one wrong comparison.)
		return l.nft(`meta l4proto != tcp drop`,
			`tcp dport 443 meta mark set 443`,
			`tcp sport 443 meta mark set 443`,
			`meta mark != 443 drop`,
			`ct mark 3 drop`,
			`ct mark 2 accept`,
			// Only packets carrying data (PSH) are judged: a bare SYN or
			// ACK has no payload to inspect.
			`tcp flags & psh == psh @ih,0,16 0x1603 ct mark set 2 accept`,
			`tcp flags & psh == psh ct mark set 3 drop`)
	}}
	// SNIBlocklist drops every flow whose bytes name the software (an SNI,
	// a certificate, an HTTP header…) or whose ClientHello carries the
	// fingerprint seen only from samizdat (BlockedFingerprint), as a censor
	// blocking by SNI keyword and TLS fingerprint does (Russia's TSPU).
	SNIBlocklist = CensorModel{"sni-fp-blocklist", "flows naming the software, or with a ClientHello fingerprint only samizdat sent, dropped", func(l *Lab) error {
		for _, k := range BlockedKeywords {
			if _, err := l.Censor.Run("iptables", "-A", "FORWARD", "-m", "string", "--algo", "bm", "--icase", "--string", k,
				"-j", "CONNMARK", "--set-mark", "0x1"); err != nil {
				return err
			}
		}
		if _, err := l.Censor.Run("iptables", "-A", "FORWARD", "-p", "tcp", "-m", "string", "--algo", "bm", "--hex-string", BlockedFingerprint,
			"-j", "CONNMARK", "--set-mark", "0x1"); err != nil {
			return err
		}
		_, err := l.Censor.Run("iptables", "-A", "FORWARD", "-m", "connmark", "--mark", "0x1", "-j", "DROP")
		return err
	}}
	// Shutdown forwards nothing between inside and outside.
	Shutdown = CensorModel{"shutdown", "nothing forwarded", func(l *Lab) error {
		return l.nft(`drop`)
	}}
)

// Blocklist drops all traffic to and from the given addresses (the
// bootstrap and relay IPs the censor knows).
func Blocklist(ips ...string) CensorModel {
	return CensorModel{"blocklist", "known bootstrap/relay IPs dropped", func(l *Lab) error {
		set := strings.Join(ips, ", ")
		return l.nft("ip daddr { "+set+" } drop", "ip saddr { "+set+" } drop")
	}}
}

// Apply lifts any earlier model and applies m.
func (l *Lab) Apply(m CensorModel) {
	l.tb.Helper()
	l.Lift()
	if err := m.apply(l); err != nil {
		l.tb.Fatalf("censor model %s: %v", m.Name, err)
	}
	l.model = m.Name
}

// Lift removes every censor rule: nft table, iptables rules, qdiscs, and
// the conntrack marks of flows judged under the old rules.
func (l *Lab) Lift() {
	l.tb.Helper()
	_, _ = l.Censor.Run("nft", "delete", "table", "inet", "censor")
	_, _ = l.Censor.Run("iptables", "-F", "FORWARD")
	for _, dev := range []string{"brin", "brout"} {
		_, _ = l.Censor.Run("tc", "qdisc", "del", "dev", dev, "root")
	}
	if _, err := exec.LookPath("conntrack"); err == nil {
		_, _ = l.Censor.Run("conntrack", "-F")
	}
	l.model = "none"
}

// Model names the model in force.
func (l *Lab) Model() string { return l.model }

// nft installs rules in the forward chain of table inet censor.
func (l *Lab) nft(rules ...string) error {
	var sb strings.Builder
	sb.WriteString("table inet censor {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n")
	for _, r := range rules {
		sb.WriteString("  " + r + "\n")
	}
	sb.WriteString(" }\n}\n")
	cmd := l.Censor.Command(l.tb.Context(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(sb.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %w: %s\n%s", err, out, sb.String())
	}
	return nil
}

// dpiStrings marks a connection whose payload contains a DPI string and
// drops it from then on (iptables string match; nft has none of its own).
func (l *Lab) dpiStrings() error {
	for _, s := range DPIStrings {
		if _, err := l.Censor.Run("iptables", "-A", "FORWARD", "-m", "string", "--algo", "bm", "--string", s,
			"-j", "CONNMARK", "--set-mark", "0x1"); err != nil {
			return err
		}
	}
	_, err := l.Censor.Run("iptables", "-A", "FORWARD", "-m", "connmark", "--mark", "0x1", "-j", "DROP")
	return err
}

// AddBridge creates a bridge device dev in n, with address addr (may be
// empty), up. Hosts join it with Attach.
func (n *Netns) AddBridge(dev, addr string) *Bridge {
	n.tb.Helper()
	n.MustRun("ip", "link", "add", dev, "type", "bridge")
	if addr != "" {
		n.AddAddr(dev, addr)
	}
	n.MustRun("ip", "link", "set", dev, "up")
	return &Bridge{NS: n, Name: dev}
}
