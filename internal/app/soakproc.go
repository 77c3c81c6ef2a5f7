package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// soakProc is one process of the soak: a node (`samizdat up`) or a
// mailbox host (`samizdat relay`), killed and restarted at random.
type soakProc struct {
	name  string
	dir   string
	relay bool
	args  []string

	cmd     *exec.Cmd
	done    chan struct{}
	killed  bool // by the soak: an exit is expected
	ready   bool
	out     *soakBuf
	errb    *soakBuf
	api     *apiclient.Client // a node's, once it answers
	addrs   []string          // a relay's, once it printed them
	downAt  time.Time
	downFor time.Duration
	wedged  atomic.Int64 // stderr lines saying "already received or too old"
	logFile *os.File     // every run's stderr, when the soak keeps its directory
}

// launch starts the process without waiting for it.
func (p *soakProc) launch(exe string) error {
	if !p.relay {
		_ = os.Remove(filepath.Join(p.dir, APIFile))
	}
	cmd := exec.Command(exe, append([]string{"--profile", p.dir}, p.args...)...)
	cmd.Env = append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE=")
	// If the soak itself is killed, its processes die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.out, p.errb = &soakBuf{left: 64 << 10}, &soakBuf{left: 64 << 10, count: "already received or too old", n: &p.wedged}
	cmd.Stdout, cmd.Stderr = p.out, p.errb
	if p.logFile != nil {
		cmd.Stderr = io.MultiWriter(p.errb, p.logFile)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done, p.killed, p.ready, p.api, p.downFor = cmd, done, false, false, nil, 0
	return nil
}

// poll checks a started process: ready yet (a node's API answers, a relay
// printed its addresses)? An exit the soak did not cause is an error.
func (p *soakProc) poll(ctx context.Context) error {
	select {
	case <-p.done:
		if !p.killed {
			state := "at start"
			if p.ready {
				state = "by itself"
			}
			return fmt.Errorf("soak: %s exited %s (%v): %s", p.name, state, p.cmd.ProcessState, p.errb)
		}
		// Killed: down from now on.
		p.cmd, p.api, p.ready, p.downAt = nil, nil, false, time.Now()
		return nil
	default:
	}
	if p.ready {
		return nil
	}
	if p.relay {
		var peer string
		var addrs []string
		for _, line := range strings.Split(p.out.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "samizdat relay is up: "); ok {
				peer = v
			}
			if a, ok := strings.CutPrefix(line, "listening: "); ok && strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
				addrs = append(addrs, a)
			}
		}
		if peer != "" && len(addrs) > 0 {
			p.addrs, p.ready = addrs, true
		}
		return nil
	}
	if c, err := apiclient.Load(ctx, filepath.Join(p.dir, APIFile)); err == nil {
		p.api, p.ready = c, true
	}
	return nil
}

// startWait starts the process and waits until it is ready.
func (p *soakProc) startWait(ctx context.Context, exe string) error {
	if err := p.launch(exe); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if err := p.poll(ctx); err != nil {
			return err
		}
		if p.ready {
			return nil
		}
		if time.Now().After(deadline) {
			p.stop(true)
			return fmt.Errorf("soak: %s did not come up within a minute: %s", p.name, p.errb)
		}
		select {
		case <-ctx.Done():
			p.stop(true)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tend moves the process along without blocking: a running one is polled,
// one that has been down for its 1–3 s is started again.
func (p *soakProc) tend(ctx context.Context, exe string, rng *rand.Rand) error {
	if p.cmd != nil {
		return p.poll(ctx)
	}
	if p.downFor == 0 {
		p.downFor = time.Second + time.Duration(rng.IntN(2000))*time.Millisecond
	}
	if time.Since(p.downAt) < p.downFor {
		return nil
	}
	return p.launch(exe)
}

// kill sends SIGKILL without waiting: poll notices the exit.
func (p *soakProc) kill() {
	p.killed = true
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
}

// stop kills the process: with SIGKILL (a crash) or SIGINT (a clean stop).
func (p *soakProc) stop(kill bool) {
	if p.cmd == nil {
		return
	}
	p.killed = true
	sig := syscall.SIGINT
	if kill {
		sig = syscall.SIGKILL
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd, p.api, p.ready, p.downAt = nil, nil, false, time.Now()
}

// soakBuf keeps the first bytes a process writes, and counts the writes
// (slog writes a line at a time) that contain count.
type soakBuf struct {
	mu    sync.Mutex
	b     bytes.Buffer
	left  int
	count string
	n     *atomic.Int64
}

func (s *soakBuf) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count != "" && bytes.Contains(b, []byte(s.count)) {
		s.n.Add(1)
	}
	if s.left > 0 {
		k := min(len(b), s.left)
		s.b.Write(b[:k])
		s.left -= k
	}
	return len(b), nil
}

func (s *soakBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
