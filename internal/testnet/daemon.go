package testnet

// Real samizdat daemons inside namespaces, driven through the CLI the way
// a user drives them (`ip netns exec NS samizdat …`: the local API listens
// on the namespace's own loopback).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// SamizdatBinary builds cmd/samizdat once per test process (with -race
// when the test binary has it) and returns its path. Call RemoveSamizdatBinary from TestMain after m.Run.
func SamizdatBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "samizdat-testnet-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "samizdat")
		args := []string{"build"}
		cgo := "CGO_ENABLED=0"
		if raceBuild {
			// The daemons run with the race detector when the test does
			// (it needs cgo).
			args, cgo = append(args, "-race"), "CGO_ENABLED=1"
		}
		cmd := exec.Command("go", append(args, "-o", buildPath, "github.com/samizdat-im/samizdat/cmd/samizdat")...)
		cmd.Env = append(os.Environ(), cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build samizdat: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
}

// RemoveSamizdatBinary removes what SamizdatBinary built.
func RemoveSamizdatBinary() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Daemon is one samizdat profile living in a namespace.
type Daemon struct {
	Name string
	NS   *Netns
	Dir  string
	bin  string
	tb   testing.TB
	proc *Proc
}

// NewDaemon creates a profile (no passphrase) named name for a node that
// runs in ns.
func NewDaemon(tb testing.TB, ns *Netns, name string) *Daemon {
	tb.Helper()
	d := &Daemon{Name: name, NS: ns, Dir: filepath.Join(tb.TempDir(), name), bin: SamizdatBinary(tb), tb: tb}
	d.Must("init", "--name", name, "--no-passphrase")
	return d
}

// Run runs a samizdat command on the profile inside the namespace.
func (d *Daemon) Run(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := d.NS.Command(ctx, d.bin, append([]string{"--profile", d.Dir}, args...)...)
	cmd.Env = append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

// Must runs a command that must succeed and returns its stdout.
func (d *Daemon) Must(args ...string) string {
	d.tb.Helper()
	out, errOut, code := d.Run(args...)
	if code != 0 {
		d.tb.Fatalf("%s: samizdat %s: exit %d\n%s%s", d.Name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// Up starts `samizdat up` with args in the background and waits for its
// API. The node is stopped (Ctrl-C) when the test ends.
func (d *Daemon) Up(args ...string) {
	d.tb.Helper()
	os.Remove(filepath.Join(d.Dir, "api.json"))
	// Without mesh and mDNS unless args turn them on (a later flag wins):
	// the lab's inside hosts share a LAN, and carrying envelopes between
	// them would be one more way past the censor than the one a test
	// measures.
	d.proc = d.NS.Start([]string{"SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE="}, d.bin,
		append([]string{"--profile", d.Dir, "up", "--log-level", "debug", "--mesh=false", "--mdns=false"}, args...)...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(d.Dir, "api.json")); err == nil {
			return
		}
		select {
		case <-d.proc.Done():
			d.tb.Fatalf("%s: samizdat up exited: %v\n%s", d.Name, d.proc.Err(), d.proc.Stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.tb.Fatalf("%s: samizdat up did not come up\n%s", d.Name, d.proc.Stderr)
		}
	}
}

// Stop interrupts the node and waits for it to exit.
func (d *Daemon) Stop() {
	d.tb.Helper()
	if d.proc == nil {
		return
	}
	if err := d.proc.Stop(20 * time.Second); err != nil {
		d.tb.Errorf("%s: samizdat up: %v\n%s", d.Name, err, d.proc.Stderr)
	}
	d.proc = nil
}

// Log returns what the running (or last) node logged.
func (d *Daemon) Log() string {
	if d.proc == nil {
		return ""
	}
	return d.proc.Stderr.String()
}

// WaitLogCount waits until the daemon's log holds at least n lines with
// needle (e.g. n failed delivery attempts): a condition in the daemon
// instead of a sleep guessed to be long enough.
func (d *Daemon) WaitLogCount(needle string, n int, timeout time.Duration) {
	d.tb.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(d.Log(), needle) < n {
		if time.Now().After(deadline) {
			d.tb.Fatalf("%s: %d of %d log lines with %q after %v\n%s", d.Name, strings.Count(d.Log(), needle), n, needle, timeout, d.Log())
		}
		time.Sleep(50 * time.Millisecond) // polling the log
	}
}

// Stdout returns what the running node printed for the user.
func (d *Daemon) Stdout() string {
	if d.proc == nil {
		return ""
	}
	return d.proc.Stdout.String()
}

// Status is the part of `samizdat status --json` lab tests read.
type Status struct {
	PeerID         string         `json:"peerId"`
	Running        bool           `json:"running"`
	Addrs          []string       `json:"addrs"`
	ConnectedPeers []string       `json:"connectedPeers"`
	Outbox         map[string]int `json:"outbox"`
	Transports     []struct {
		Name string `json:"name"`
		Open int    `json:"open"`
	} `json:"transports"`
	TransportOrder []string `json:"transportOrder"`
	Bridges        []string `json:"bridges"`
	PeerCache      int      `json:"peerCache"`
}

// Status returns the node's status.
func (d *Daemon) Status() Status {
	d.tb.Helper()
	var st Status
	if err := json.Unmarshal([]byte(d.Must("status", "--json")), &st); err != nil {
		d.tb.Fatal(err)
	}
	return st
}

// Invite returns the profile's invite link.
func (d *Daemon) Invite() string {
	d.tb.Helper()
	return strings.TrimSpace(d.Must("invite"))
}

// Send sends text to contact and returns the message id.
func (d *Daemon) Send(contact, text string) string {
	d.tb.Helper()
	return strings.TrimSpace(d.Must("send", contact, text))
}

// Message is one message as `samizdat messages --json` prints it.
type Message struct {
	ID       string `json:"id"`
	Body     string `json:"body"`
	Outgoing bool   `json:"outgoing"`
	State    string `json:"state"`
}

// Messages returns the conversation with contact.
func (d *Daemon) Messages(contact string) []Message {
	d.tb.Helper()
	var conv struct {
		Messages []Message `json:"messages"`
	}
	if err := json.Unmarshal([]byte(d.Must("messages", contact, "--json")), &conv); err != nil {
		d.tb.Fatal(err)
	}
	return conv.Messages
}

// State returns the state of outgoing message id to contact ("" if unknown).
func (d *Daemon) State(contact, id string) string {
	d.tb.Helper()
	for _, m := range d.Messages(contact) {
		if m.ID == id {
			return m.State
		}
	}
	return ""
}

// WaitState polls until message id to contact is in state, or fails the
// test after timeout.
func (d *Daemon) WaitState(contact, id, state string, timeout time.Duration) {
	d.tb.Helper()
	if !d.AwaitState(contact, id, state, timeout) {
		d.tb.Fatalf("%s: message %s to %s is %q after %v, want %q\nlog tail:\n%s", d.Name, id, contact, d.State(contact, id), timeout, state, tail(d.Log(), 40))
	}
}

// AwaitState is WaitState reporting instead of failing.
func (d *Daemon) AwaitState(contact, id, state string, timeout time.Duration) bool {
	d.tb.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if d.State(contact, id) == state {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
