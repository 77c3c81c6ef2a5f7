package p2p

// Pluggable transports, PT 1.0 (the Tor pluggable-transport specification,
// as Tor and Briar use it): the transport binary (obfs4proxy, lyrebird,
// snowflake-client…) runs as a managed child. Client side, it announces a
// SOCKS5 port per method ("CMETHOD obfs4 socks5 127.0.0.1:PORT"); the node
// dials a bridge through it, passing the bridge's arguments
// (cert=…;iat-mode=0) as SOCKS5 username/password. Server side, it listens
// for the obfuscated protocol ("SMETHOD obfs4 IP:PORT ARGS:cert=…") and
// forwards each connection in the clear to the node's own TCP listener
// (TOR_PT_ORPORT). Any PT 1.0 binary works; none is linked in.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/net/proxy"
)

// ptStartTimeout bounds how long a PT binary may take to announce its methods.
const ptStartTimeout = 20 * time.Second

// ErrPT is returned when a pluggable-transport binary cannot be started or
// refuses the requested method.
var ErrPT = errors.New("p2p: pluggable transport")

// Bridge is a peer reachable through a pluggable transport: Tor's bridge
// line format, with the peer id where Tor has a fingerprint:
//
//	obfs4 198.19.1.10:8443 12D3KooW… cert=AbC…;iat-mode=0
type Bridge struct {
	Method string // "obfs4"
	Addr   string // IP:port of the PT server
	PeerID string
	Args   string // "cert=…;iat-mode=0", passed to the PT client as is
}

// ParseBridge parses a bridge line (see Bridge). Arguments may be separated
// by spaces or semicolons.
func ParseBridge(line string) (Bridge, error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return Bridge{}, fmt.Errorf("%w: bridge line %q: want METHOD IP:PORT PEERID [ARGS]", ErrPT, line)
	}
	if _, _, err := net.SplitHostPort(f[1]); err != nil {
		return Bridge{}, fmt.Errorf("%w: bridge line %q: %v", ErrPT, line, err)
	}
	if _, err := parsePeerID(f[2]); err != nil {
		return Bridge{}, fmt.Errorf("%w: bridge line: %w", ErrPT, err)
	}
	return Bridge{Method: f[0], Addr: f[1], PeerID: f[2], Args: strings.Join(f[3:], ";")}, nil
}

// bridgeAddrInfo is the bridge as a peer to dial: its PT server's address,
// which the TCP transport's dialer sends through the PT client.
func bridgeAddrInfo(b Bridge) (peer.AddrInfo, error) {
	id, err := parsePeerID(b.PeerID)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	ta, err := net.ResolveTCPAddr("tcp", b.Addr)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	a, err := manet.FromNetAddr(ta)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{a}}, nil
}

// String returns the bridge line.
func (b Bridge) String() string {
	s := b.Method + " " + b.Addr + " " + b.PeerID
	if b.Args != "" {
		s += " " + strings.ReplaceAll(b.Args, ";", " ")
	}
	return s
}

// PTConfig configures pluggable transports.
type PTConfig struct {
	// Binary is the PT executable for each method, e.g.
	// {"obfs4": "/usr/bin/obfs4proxy"}.
	Binary map[string]string
	// Bridges are dialed through their method's PT client.
	Bridges []Bridge
	// Serve lists methods this node serves, each "METHOD@IP:PORT"
	// (e.g. "obfs4@0.0.0.0:8443"); the PT server forwards to the node's
	// first TCP listener.
	Serve []string
	// StateDir is where PT binaries keep their state (obfs4's keys: a node
	// keeps the same bridge cert across restarts).
	StateDir string
}

// ptProc is one managed PT child.
type ptProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

func (p *ptProc) close() {
	// TOR_PT_EXIT_ON_STDIN_CLOSE asks the child to exit; kill if it lingers.
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startPT launches a PT binary with the managed-proxy environment and
// returns the lines it printed up to its "…METHODS DONE" line.
func startPT(ctx context.Context, bin, stateDir string, env []string, log *slog.Logger) (*ptProc, []string, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("%w: state dir: %w", ErrPT, err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"TOR_PT_MANAGED_TRANSPORT_VER=1",
		"TOR_PT_STATE_LOCATION=" + stateDir,
		"TOR_PT_EXIT_ON_STDIN_CLOSE=1",
	}, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%w: start %s: %w", ErrPT, bin, err)
	}
	p := &ptProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-p.done:
			}
		}
		close(lines)
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	var got []string
	t := time.NewTimer(ptStartTimeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				p.close()
				return nil, nil, fmt.Errorf("%w: %s exited before announcing its methods: %v", ErrPT, bin, got)
			}
			log.Debug("ptLine", "bin", bin, "line", l)
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			switch {
			case strings.HasSuffix(f[0], "-ERROR"):
				p.close()
				return nil, nil, fmt.Errorf("%w: %s: %s", ErrPT, bin, l)
			case f[0] == "CMETHODS" || f[0] == "SMETHODS":
				// Keep draining stdout so the child never blocks on it.
				go func() {
					for range lines {
					}
				}()
				return p, got, nil
			}
			got = append(got, l)
		case <-t.C:
			p.close()
			return nil, nil, fmt.Errorf("%w: %s announced no methods in %s", ErrPT, bin, ptStartTimeout)
		case <-ctx.Done():
			p.close()
			return nil, nil, ctx.Err()
		}
	}
}

// ptClients runs one PT client per method that has bridges, and dials
// bridges through them.
type ptClients struct {
	mu      sync.Mutex
	procs   []*ptProc
	socks   map[string]string // method → SOCKS5 address
	bridges map[string]Bridge // bridge IP:port → bridge
}

func (c *ptClients) hasBridges() bool { return c != nil && len(c.bridges) > 0 }

// startPTClients starts the PT clients the bridges need.
func startPTClients(ctx context.Context, cfg PTConfig, log *slog.Logger) (*ptClients, error) {
	c := &ptClients{socks: map[string]string{}, bridges: map[string]Bridge{}}
	for _, b := range cfg.Bridges {
		c.bridges[b.Addr] = b
		if _, ok := c.socks[b.Method]; ok {
			continue
		}
		bin := cfg.Binary[b.Method]
		if bin == "" {
			c.close()
			return nil, fmt.Errorf("%w: no binary for method %q (give --pt %s=/path/to/binary)", ErrPT, b.Method, b.Method)
		}
		p, lines, err := startPT(ctx, bin, cfg.StateDir+"/client", []string{"TOR_PT_CLIENT_TRANSPORTS=" + b.Method}, log)
		if err != nil {
			c.close()
			return nil, err
		}
		c.procs = append(c.procs, p)
		for _, l := range lines {
			// CMETHOD <name> socks5 <addr>
			if f := strings.Fields(l); len(f) >= 4 && f[0] == "CMETHOD" && f[1] == b.Method && f[2] == "socks5" {
				c.socks[b.Method] = f[3]
			}
		}
		if c.socks[b.Method] == "" {
			c.close()
			return nil, fmt.Errorf("%w: %s offers no SOCKS5 method %q: %v", ErrPT, bin, b.Method, lines)
		}
		log.Info("ptClientStarted", "method", b.Method)
	}
	return c, nil
}

// dialerFor returns the dialer reaching addr through its bridge's PT.
func (c *ptClients) dialerFor(addr string) (tcp.ContextDialer, bool) {
	if c == nil {
		return nil, false
	}
	b, ok := c.bridges[addr]
	if !ok {
		return nil, false
	}
	// PT 1.0: arguments go in the SOCKS5 username (and, beyond 255 bytes,
	// the password); a lone NUL password when they fit.
	user, pass := b.Args, "\x00"
	if len(user) > 255 {
		user, pass = b.Args[:255], b.Args[255:]
	}
	if user == "" {
		user = "\x00"
	}
	d, err := socksDialer(c.socks[b.Method], &proxy.Auth{User: user, Password: pass})
	if err != nil {
		return nil, false
	}
	return d, true
}

// isBridge reports whether addr (IP:port) is a configured bridge, and its method.
func (c *ptClients) isBridge(addr string) (string, bool) {
	if c == nil {
		return "", false
	}
	b, ok := c.bridges[addr]
	return b.Method, ok
}

func (c *ptClients) close() {
	if c == nil {
		return
	}
	for _, p := range c.procs {
		p.close()
	}
	c.procs = nil
}

// ptServer is one served method: the child and the bridge line to give out.
type ptServer struct {
	proc   *ptProc
	method string
	addr   string
	args   string // from ARGS:, comma-separated key=value
}

// startPTServers starts the PT servers, forwarding to orPort (IP:port of
// the node's TCP listener).
func startPTServers(ctx context.Context, cfg PTConfig, orPort string, log *slog.Logger) ([]*ptServer, error) {
	var out []*ptServer
	for _, s := range cfg.Serve {
		method, bind, ok := strings.Cut(s, "@")
		if !ok {
			closeServers(out)
			return nil, fmt.Errorf("%w: serve %q: want METHOD@IP:PORT", ErrPT, s)
		}
		bin := cfg.Binary[method]
		if bin == "" {
			closeServers(out)
			return nil, fmt.Errorf("%w: no binary for method %q (give --pt %s=/path/to/binary)", ErrPT, method, method)
		}
		p, lines, err := startPT(ctx, bin, cfg.StateDir+"/server-"+method, []string{
			"TOR_PT_SERVER_TRANSPORTS=" + method,
			"TOR_PT_SERVER_BINDADDR=" + method + "-" + bind,
			"TOR_PT_ORPORT=" + orPort,
		}, log)
		if err != nil {
			closeServers(out)
			return nil, err
		}
		srv := &ptServer{proc: p, method: method}
		for _, l := range lines {
			// SMETHOD <name> <addr> [ARGS:k=v,k=v]
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == "SMETHOD" && f[1] == method {
				srv.addr = f[2]
				for _, o := range f[3:] {
					if a, ok := strings.CutPrefix(o, "ARGS:"); ok {
						srv.args = a
					}
				}
			}
		}
		out = append(out, srv)
		if srv.addr == "" {
			closeServers(out)
			return nil, fmt.Errorf("%w: %s serves no %q: %v", ErrPT, bin, method, lines)
		}
		log.Info("ptServerStarted", "method", method, "addr", srv.addr)
	}
	return out, nil
}

// bridgeLine returns the bridge line for this server, for peer id, with
// host replacing a wildcard bind address.
func (s *ptServer) bridgeLine(peerID, host string) string {
	addr := s.addr
	if h, port, err := net.SplitHostPort(addr); err == nil && (h == "0.0.0.0" || h == "::") && host != "" {
		addr = net.JoinHostPort(host, port)
	}
	return Bridge{Method: s.method, Addr: addr, PeerID: peerID, Args: strings.ReplaceAll(s.args, ",", ";")}.String()
}

func closeServers(ss []*ptServer) {
	for _, s := range ss {
		s.proc.close()
	}
}
