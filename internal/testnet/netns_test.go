package testnet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a tiny TCP echo server and client run inside
// namespaces (a Go process cannot switch its goroutines' namespaces).
func TestMain(m *testing.M) {
	switch os.Getenv("SZ_NETNS_HELPER") {
	case "":
		code := m.Run()
		RemoveSamizdatBinary()
		os.Exit(code)
	case "echo":
		ln, err := net.Listen("tcp", os.Getenv("SZ_ADDR"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(0)
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	case "socks5":
		serveSOCKS5(os.Getenv("SZ_ADDR"))
	case "stun":
		serveSTUN(os.Getenv("SZ_ADDR"))
	case "hello":
		if err := helloClient(os.Getenv("SZ_MODE"), os.Getenv("SZ_ADDR"), os.Getenv("SZ_NAME")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "probe":
		os.Exit(runProbe(os.Getenv("SZ_ADDR"), os.Getenv("SZ_NAME"), os.Getenv("SZ_REPLAY"), os.Getenv("SZ_INSIDER")))
	case "dial":
		c, err := net.DialTimeout("tcp", os.Getenv("SZ_ADDR"), 3*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintln(c, "hello")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(line)
		os.Exit(0)
	}
}

// serveSOCKS5 is a minimal SOCKS5 proxy (no authentication, CONNECT to
// IPv4 addresses): the VPN or Tor client of the lab.
func serveSOCKS5(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(0)
		}
		go func() {
			defer c.Close()
			h := make([]byte, 2)
			if _, err := io.ReadFull(c, h); err != nil || h[0] != 5 {
				return
			}
			if _, err := io.ReadFull(c, make([]byte, h[1])); err != nil {
				return
			}
			c.Write([]byte{5, 0})
			req := make([]byte, 10)
			if _, err := io.ReadFull(c, req); err != nil || req[1] != 1 || req[3] != 1 {
				return
			}
			dst := net.JoinHostPort(net.IP(req[4:8]).String(), strconv.Itoa(int(req[8])<<8|int(req[9])))
			up, err := net.DialTimeout("tcp", dst, 10*time.Second)
			if err != nil {
				c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
				return
			}
			defer up.Close()
			c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			_, _ = io.Copy(c, up)
		}()
	}
}

// dial runs the dial helper in ns against addr and reports whether the echo
// came back.
func dial(t *testing.T, ns *Netns, addr string) bool {
	t.Helper()
	cmd := ns.Command(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), "SZ_NETNS_HELPER=dial", "SZ_ADDR="+addr)
	out, err := cmd.Output()
	return err == nil && strings.TrimSpace(string(out)) == "hello"
}

// startEcho starts the test binary in ns as helper mode ("echo" by
// default, or "socks5") listening on addr, and waits until it listens.
func startEcho(t *testing.T, ns *Netns, addr string, mode ...string) {
	t.Helper()
	m := "echo"
	if len(mode) > 0 {
		m = mode[0]
	}
	p := ns.Start([]string{"SZ_NETNS_HELPER=" + m, "SZ_ADDR=" + addr}, os.Args[0])
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Stdout.String(), "listening") {
		select {
		case <-p.Done():
			t.Fatalf("%s helper exited: %v %s", m, p.Err(), p.Stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s helper did not start", m)
		}
	}
}

func TestNetnsRoutedAndBridged(t *testing.T) {
	RequireRoot(t)
	var names []string
	t.Run("routed", func(t *testing.T) {
		a, r, b := NewNetns(t, "a"), NewNetns(t, "r"), NewNetns(t, "b")
		names = append(names, a.Name, r.Name, b.Name)
		Link(t, a, "eth0", "198.18.1.2/24", r, "ra", "198.18.1.1/24")
		Link(t, r, "rb", "198.19.1.1/24", b, "eth0", "198.19.1.2/24")
		r.EnableForwarding()
		a.Route("default", "198.18.1.1")
		b.Route("default", "198.19.1.1")
		startEcho(t, b, "198.19.1.2:7000")
		if !dial(t, a, "198.19.1.2:7000") {
			t.Fatal("a cannot reach b through the router")
		}
		// The root namespace has no lab address and no route to one.
		if out, _ := exec.Command("ip", "-4", "addr").Output(); strings.Contains(string(out), "198.18.") || strings.Contains(string(out), "198.19.") {
			t.Fatalf("lab address leaked into the root namespace:\n%s", out)
		}
		r.SetLink("rb", false)
		if dial(t, a, "198.19.1.2:7000") {
			t.Fatal("a reached b with the router's link down")
		}
		r.SetLink("rb", true)
		b.Readdress("eth0", "198.19.1.3/24")
		b.Route("default", "198.19.1.1")
		startEcho(t, b, "198.19.1.3:7000")
		if !dial(t, a, "198.19.1.3:7000") {
			t.Fatal("a cannot reach b at its new address")
		}
	})
	t.Run("bridged", func(t *testing.T) {
		br := NewBridge(t, "br")
		a, b := NewNetns(t, "a"), NewNetns(t, "b")
		names = append(names, br.NS.Name, a.Name, b.Name)
		br.Attach(t, a, "eth0", "198.18.5.1/24")
		port := br.Attach(t, b, "eth0", "198.18.5.2/24")
		startEcho(t, b, "198.18.5.2:7000")
		if !dial(t, a, "198.18.5.2:7000") {
			t.Fatal("a cannot reach b over the bridge")
		}
		br.NS.SetLink(port, false)
		if dial(t, a, "198.18.5.2:7000") {
			t.Fatal("a reached b with b's cable pulled")
		}
	})
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s left behind after its test", n)
		}
	}
}

func TestAddAddrRefusesNonLabAddresses(t *testing.T) {
	RequireRoot(t)
	ft := &fatalRecorder{TB: t}
	n := NewNetns(t, "x")
	n.tb = ft
	func() {
		defer func() { _ = recover() }()
		n.AddAddr("lo", "10.0.0.1/8")
	}()
	if !ft.failed {
		t.Fatal("AddAddr accepted an address outside 198.18.0.0/15")
	}
}

// fatalRecorder records Fatalf instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
func (f *fatalRecorder) Helper()               {}
