package testnet

// Network-namespace primitives for lab tests (DESIGN §10). Every host is a
// Linux network namespace; hosts are joined by veth pairs, either directly
// (Link) or through a bridge that lives in its own namespace (Bridge). All
// addresses come from 198.18.0.0/15 and exist only inside the namespaces
// the test creates: the root namespace gets no address and no route, so
// nothing a lab test does can leave the machine.
//
// Everything is torn down by t.Cleanup, also when the test fails: processes
// started with Start are killed first (cleanups run last-in first-out),
// then the namespace is deleted, which removes its veths, addresses, routes,
// qdiscs and nftables rules with it.
//
// A Go process cannot move a goroutine's libp2p host into a namespace
// (namespaces are per OS thread and the Go scheduler migrates goroutines),
// so nodes in a namespace are separate processes: Netns.Command /
// Netns.Start wrap `ip netns exec`.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LabPrefix is the address block lab hosts use (RFC 2544 benchmarking
// space): never routed on the internet, and here never present outside the
// test's namespaces.
var LabPrefix = netip.MustParsePrefix("198.18.0.0/15")

// RequireRoot skips the test, with a message saying why, unless it runs as
// root with the `ip` tool and every extra tool named (e.g. "nft", "tc").
func RequireRoot(tb testing.TB, tools ...string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("lab test: needs root to create network namespaces (run as root, e.g. in CI)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("lab test: needs %q on PATH (apt-get install iproute2 nftables iptables)", tool)
		}
	}
}

// Netns is one network namespace created for a test.
type Netns struct {
	// Name is the namespace's name, as `ip netns` knows it.
	Name string
	tb   testing.TB
}

// NewNetns creates a namespace named "sz<label>-<random>" with its
// loopback up, and deletes it when the test ends. label is a short tag
// (a few letters) for reading `ip netns list` while a test runs.
func NewNetns(tb testing.TB, label string) *Netns {
	tb.Helper()
	var r [3]byte
	_, _ = rand.Read(r[:])
	n := &Netns{Name: "sz" + label + "-" + hex.EncodeToString(r[:]), tb: tb}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	n.MustRun("ip", "link", "set", "lo", "up")
	return n
}

// Command returns a command that runs name with args inside the namespace.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output.
func (n *Netns) Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (n *Netns) MustRun(name string, args ...string) string {
	n.tb.Helper()
	out, err := n.Run(name, args...)
	if err != nil {
		n.tb.Fatal(err)
	}
	return out
}

// Proc is a long-running process inside a namespace.
type Proc struct {
	Cmd    *exec.Cmd
	Stdout *SyncBuffer
	Stderr *SyncBuffer
	done   chan struct{}
	err    error
}

// Start starts a command inside the namespace in the background, with
// extra environment variables added to the test's own. The process is
// interrupted (SIGINT, then SIGKILL after 10 s) when the test ends, before
// the namespace is deleted.
func (n *Netns) Start(env []string, name string, args ...string) *Proc {
	n.tb.Helper()
	cmd := n.Command(context.Background(), name, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &Proc{Cmd: cmd, Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	if err := cmd.Start(); err != nil {
		n.tb.Fatalf("%s: start %s: %v", n.Name, name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.tb.Cleanup(func() { p.Stop(10 * time.Second) })
	return p
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, valid once Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Stop interrupts the process and waits up to grace for it to exit, then
// kills it. It returns the exit error; calling it again is harmless.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	// `ip netns exec` execs the command, so the signal reaches it directly.
	_ = p.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Link joins two namespaces with a veth pair: ifA (address addrA, a
// prefix such as "198.18.0.1/24") in a and ifB (addrB) in b, both up.
// An empty address leaves that end unaddressed (e.g. a router's
// interface re-addressed later). Interface names are at most 15 bytes and
// need only be unique within their namespace.
func Link(tb testing.TB, a *Netns, ifA, addrA string, b *Netns, ifB, addrB string) {
	tb.Helper()
	out, err := exec.Command("ip", "link", "add", "name", ifA, "netns", a.Name,
		"type", "veth", "peer", "name", ifB, "netns", b.Name).CombinedOutput()
	if err != nil {
		tb.Fatalf("veth %s/%s—%s/%s: %v: %s", a.Name, ifA, b.Name, ifB, err, out)
	}
	a.upAddr(ifA, addrA)
	b.upAddr(ifB, addrB)
}

func (n *Netns) upAddr(ifname, addr string) {
	n.tb.Helper()
	if addr != "" {
		n.AddAddr(ifname, addr)
	}
	n.MustRun("ip", "link", "set", ifname, "up")
}

// AddAddr adds an address (with prefix length) from LabPrefix to an
// interface; anything outside 198.18.0.0/15 fails the test.
func (n *Netns) AddAddr(ifname, addr string) {
	n.tb.Helper()
	p, err := netip.ParsePrefix(addr)
	if err != nil || !LabPrefix.Contains(p.Addr()) {
		n.tb.Fatalf("lab address %q: want an address/len inside %s", addr, LabPrefix)
	}
	n.MustRun("ip", "addr", "add", addr, "dev", ifname)
}

// Readdress replaces every address of an interface with addr (a host
// moving to another network, or getting a new lease).
func (n *Netns) Readdress(ifname, addr string) {
	n.tb.Helper()
	n.MustRun("ip", "addr", "flush", "dev", ifname)
	n.AddAddr(ifname, addr)
}

// SetLink brings an interface up or down (a cable pulled, Wi-Fi lost).
func (n *Netns) SetLink(ifname string, up bool) {
	n.tb.Helper()
	state := "down"
	if up {
		state = "up"
	}
	n.MustRun("ip", "link", "set", ifname, state)
}

// Route adds a route to dst ("198.19.0.0/24" or "default") via gw.
func (n *Netns) Route(dst, gw string) {
	n.tb.Helper()
	n.MustRun("ip", "route", "replace", dst, "via", gw)
}

// EnableForwarding makes the namespace route IPv4 between its interfaces.
func (n *Netns) EnableForwarding() {
	n.tb.Helper()
	n.MustRun("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
}

// Bridge is a Linux bridge inside its own namespace: a LAN segment that
// any number of namespaces join with Attach.
type Bridge struct {
	NS   *Netns
	Name string // the bridge device inside NS
	mu   sync.Mutex
	port int
}

// NewBridge creates a namespace holding one bridge device "br0".
func NewBridge(tb testing.TB, label string) *Bridge {
	tb.Helper()
	b := &Bridge{NS: NewNetns(tb, label), Name: "br0"}
	b.NS.MustRun("ip", "link", "add", b.Name, "type", "bridge")
	b.NS.MustRun("ip", "link", "set", b.Name, "up")
	return b
}

// Attach plugs namespace n into the bridge: interface ifname in n with
// address addr (may be empty), its peer enslaved to the bridge. It
// returns the name of the bridge-side port (to pull the cable with
// b.NS.SetLink(port, false)).
func (b *Bridge) Attach(tb testing.TB, n *Netns, ifname, addr string) string {
	tb.Helper()
	b.mu.Lock()
	b.port++
	port := fmt.Sprintf("%sp%d", b.Name, b.port)
	b.mu.Unlock()
	Link(tb, n, ifname, addr, b.NS, port, "")
	b.NS.MustRun("ip", "link", "set", port, "master", b.Name)
	return port
}

// SyncBuffer is a bytes.Buffer safe for a process's writer goroutine and
// the test reading it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
