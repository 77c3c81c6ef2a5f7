package main

// End-to-end tests of the real binary: several processes, each its own
// profile, talking over loopback, driven only through the CLI.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "samizdat-e2e-")
	if err != nil {
		panic(err)
	}
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// profile is one user's profile directory, driven through the binary.
type profile struct {
	t    *testing.T
	name string
	dir  string
	env  []string
	up   *exec.Cmd
	log  *syncBuffer // the daemon's logs (stderr)
	out  *syncBuffer // what it printed for the user (stdout)
	done chan error
	bin  string            // the binary to run ("": the e2e binary)
	cl   *apiclient.Client // the running node's API (see client)
	runs []*syncBuffer     // the logs of every run of its daemon, for failures
}

// exe is the binary a command on the profile runs: p.bin when set; while
// this test runs the profile's node, the binary built without -race (the
// command is then a client of the node's API, and the node, race-built,
// does the work: see clientBinary); otherwise the e2e binary.
func (p *profile) exe() string {
	if p.bin != "" {
		return p.bin
	}
	if p.up != nil {
		return clientBinary(p.t)
	}
	return binary
}

func newProfile(t *testing.T, name string, extraEnv ...string) *profile {
	p := &profile{t: t, name: name, dir: filepath.Join(t.TempDir(), name), env: extraEnv}
	// A failure names one node, but its cause is often in another's log
	// (a refusal is explained by the refusing node): every node's logs,
	// of every run, go with a failed test.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, l := range p.runs {
			t.Logf("%s: log of run %d of %d (last %d lines):\n%s", p.name, i+1, len(p.runs), failLogLines, lastLines(l.String(), failLogLines))
		}
	})
	return p
}

// failLogLines bounds each log printed with a failed test.
const failLogLines = 400

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run runs a samizdat command on the profile and returns stdout, stderr
// and the exit code.
func (p *profile) run(args ...string) (string, string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.exe(), append([]string{"--profile", p.dir}, args...)...)
	cmd.Env = append(append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE="), p.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// must runs a command that must succeed and returns its stdout.
func (p *profile) must(args ...string) string {
	p.t.Helper()
	out, errOut, code := p.run(args...)
	if code != 0 {
		p.t.Fatalf("%s: samizdat %s: exit %d\nstdout: %s\nstderr: %s", p.name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs a command that must fail with exit code 1 and an error
// message containing want.
func (p *profile) fails(want string, args ...string) {
	p.t.Helper()
	out, errOut, code := p.run(args...)
	if code != 1 || !strings.Contains(errOut, want) {
		p.t.Fatalf("%s: samizdat %s: exit %d, stderr %q; want exit 1 and %q (stdout %q)", p.name, strings.Join(args, " "), code, errOut, want, out)
	}
}

// start runs `samizdat up` in the background until stop.
func (p *profile) start(args ...string) {
	p.t.Helper()
	os.Remove(filepath.Join(p.dir, "api.json"))
	p.cl = nil
	cmd := exec.Command(binary, append([]string{"--profile", p.dir, "up", "--log-level", "debug"}, args...)...)
	cmd.Env = append(append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE="), p.env...)
	p.log, p.out = &syncBuffer{}, &syncBuffer{}
	p.runs = append(p.runs, p.log)
	cmd.Stdout, cmd.Stderr = p.out, p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.up, p.done = cmd, make(chan error, 1)
	go func() { p.done <- cmd.Wait() }()
	p.t.Cleanup(p.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(p.dir, "api.json")); err == nil {
			return
		}
		select {
		case err := <-p.done:
			p.t.Fatalf("%s: samizdat up exited: %v\n%s", p.name, err, p.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: samizdat up did not come up\n%s", p.name, p.log)
		}
	}
}

// stop sends SIGINT (Ctrl-C) and checks the node exits cleanly.
func (p *profile) stop() {
	if p.up == nil {
		return
	}
	p.up.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("%s: samizdat up exited with %v after Ctrl-C\n%s", p.name, err, p.log)
		}
	case <-time.After(20 * time.Second):
		p.up.Process.Kill()
		p.t.Errorf("%s: samizdat up did not stop on Ctrl-C", p.name)
	}
	p.up, p.cl = nil, nil
	if _, err := os.Stat(filepath.Join(p.dir, "api.json")); err == nil {
		p.t.Errorf("%s: api.json left behind after shutdown", p.name)
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writer goroutine
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

type message struct {
	ID       string `json:"id"`
	Body     string `json:"body"`
	Outgoing bool   `json:"outgoing"`
	State    string `json:"state"`
}

func (p *profile) messages(contact string) []message {
	p.t.Helper()
	var conv struct {
		Messages []message `json:"messages"`
	}
	if err := json.Unmarshal([]byte(p.must("messages", contact, "--json")), &conv); err != nil {
		p.t.Fatal(err)
	}
	return conv.Messages
}

func (p *profile) waitState(contact, id, state string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	stateOf := func(ms []message) {
		for _, m := range ms {
			if m.ID == id {
				last = m.State
			}
		}
	}
	for time.Now().Before(deadline) {
		// The node's API first: the CLI only once it says so (poll_test.go).
		if ms, ok := p.quickMessages(contact); ok {
			if stateOf(ms); last != state {
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		if stateOf(p.messages(contact)); last == state {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s: message %s to %s is %q, want %q\nlog:\n%s", p.name, id, contact, last, state, p.log)
}

// hashTree summarises every file under dir (name, size, SHA-256), except
// the lock files, whose pid lines a failed open may rewrite.
func hashTree(t *testing.T, dir string) string {
	var sb strings.Builder
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" || d.Name() == "daemon.lock" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sb, "%s:%d:%x ", filepath.Base(path), len(b), sha256.Sum256(b))
		return nil
	})
	return sb.String()
}

// grepTree reports files under dir containing needle.
func grepTree(t *testing.T, dir string, needle []byte) []string {
	var hits []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	return hits
}

func TestCLIEndToEnd(t *testing.T) {
	t.Parallel()
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600)
	alice := newProfile(t, "alice")
	bob := newProfile(t, "bob")
	out := alice.must("init", "--name", "alice", "--passphrase-file", passFile)
	if !strings.Contains(out, "account id: ") {
		t.Fatalf("init output: %q", out)
	}
	alice.env = append(alice.env, "SAMIZDAT_PASSPHRASE=correct horse battery staple")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.fails("already exists", "init", "--name", "again", "--no-passphrase")

	alice.start()
	bob.start()
	bob.fails("in use", "up") // the profile lock

	link := strings.TrimSpace(bob.must("invite"))
	if !strings.HasPrefix(link, "samizdat:") {
		t.Fatalf("invite: %q", link)
	}
	if qr := bob.must("invite", "--qr"); !strings.Contains(qr, "█") || !strings.Contains(qr, link) {
		t.Fatal("invite --qr draws no QR code")
	}
	alice.must("contacts", "add", link, "--name", "Bob B.")
	var contacts []struct {
		Name      string `json:"name"`
		AccountID string `json:"accountId"`
	}
	json.Unmarshal([]byte(alice.must("contacts", "--json")), &contacts)
	if len(contacts) != 1 || contacts[0].Name != "Bob B." {
		t.Fatalf("contacts --json: %+v", contacts)
	}

	const secret = "the rendezvous is at the old mill 7e1f"
	id := strings.TrimSpace(alice.must("send", "Bob B.", secret))
	if len(id) != 32 {
		t.Fatalf("send printed %q, want a message id", id)
	}
	alice.waitState("Bob B.", id, "delivered")
	got := bob.messages("alice")
	if len(got) != 1 || got[0].Body != secret || got[0].Outgoing {
		t.Fatalf("bob's messages: %+v", got)
	}
	// Bob answers by account id.
	reply := strings.TrimSpace(bob.must("send", contacts[0].AccountID[:0]+mustAccount(t, alice), "see you there"))
	bob.waitState("alice", reply, "delivered")

	var st struct {
		Running bool           `json:"running"`
		Outbox  map[string]int `json:"outbox"`
		Addrs   []string       `json:"addrs"`
	}
	json.Unmarshal([]byte(alice.must("status", "--json")), &st)
	if !st.Running || st.Outbox["delivered"] != 1 || len(st.Addrs) == 0 {
		t.Fatalf("status --json: %+v", st)
	}
	// Alice's first message used one of the one-time prekey pairs her node
	// claimed from bob's when she added him: bob holds one pair fewer.
	var bst struct {
		Prekeys *struct{ SignedPrekeyID, Generations, OneTime, Unclaimed int }
	}
	json.Unmarshal([]byte(bob.must("status", "--json")), &bst)
	if p := bst.Prekeys; p == nil || p.SignedPrekeyID < 1 || p.Generations != 1 || p.OneTime != 99 || p.Unclaimed != 99 {
		t.Fatalf("bob's status --json prekeys: %+v", bst.Prekeys)
	}
	if out := bob.must("status"); !strings.Contains(out, "one-time 99 held, 99 to hand out") {
		t.Fatalf("bob's status shows no prekeys line:\n%s", out)
	}

	// Bad input: clear errors, exit 1, nothing lost.
	alice.fails("no such contact", "send", "mallory", "hi")
	alice.fails("only a failed message can be retried", "retry", "Bob B.", id)
	alice.fails("invalid invite link", "contacts", "add", "samizdat:nonsense")
	alice.fails("invalid invite link", "contacts", "add", link[:len(link)/2])
	if _, _, code := alice.run("send", "only-one-arg"); code != 2 {
		t.Errorf("usage error: exit %d, want 2", code)
	}

	alice.stop()
	bob.stop()
	// Wrong passphrase: clear error, nothing touched.
	if plain := grepTree(t, alice.dir, []byte("SQLite format 3")); len(plain) != 0 {
		t.Fatalf("unencrypted SQLite files: %v", plain)
	}
	before := hashTree(t, alice.dir)
	wrong := &profile{t: t, name: "alice", dir: alice.dir, env: []string{"SAMIZDAT_PASSPHRASE=wrong"}}
	wrong.fails("wrong passphrase", "status")
	wrong.fails("wrong passphrase", "send", "Bob B.", "never stored")
	noPass := &profile{t: t, name: "alice", dir: alice.dir}
	noPass.fails("protected by a passphrase", "messages", "Bob B.")
	if after := hashTree(t, alice.dir); after != before {
		t.Fatalf("a wrong passphrase changed the profile:\nbefore %s\nafter  %s", before, after)
	}
	// Offline, the history is still there and the profile unlocked.
	if got := alice.messages("Bob B."); len(got) != 2 || got[0].State != "delivered" {
		t.Fatalf("alice's history after restart: %+v", got)
	}

	// No plaintext of the message in any file of either profile, nor in
	// the daemons' logs (debug level).
	for _, p := range []*profile{alice, bob} {
		if hits := grepTree(t, p.dir, []byte(secret)); len(hits) > 0 {
			t.Errorf("plaintext found in %v", hits)
		}
		if hits := grepTree(t, p.dir, []byte("old mill")); len(hits) > 0 {
			t.Errorf("plaintext found in %v", hits)
		}
		if bytes.Contains(p.log.Bytes(), []byte("old mill")) {
			t.Errorf("%s's log contains the plaintext", p.name)
		}
		if bytes.Contains(p.log.Bytes(), []byte(mustAccount(t, p))) {
			t.Errorf("%s's log contains a full account id", p.name)
		}
	}
}

func mustAccount(t *testing.T, p *profile) string {
	t.Helper()
	var st struct {
		AccountID string `json:"accountId"`
	}
	json.Unmarshal([]byte(p.must("status", "--json")), &st)
	if st.AccountID == "" {
		t.Fatal("no account id in status")
	}
	return st.AccountID
}

func TestCLIRecipientDownThenUp(t *testing.T) {
	t.Parallel()
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	bob.start()
	link := strings.TrimSpace(bob.must("invite"))
	bob.stop()

	alice.start()
	alice.must("contacts", "add", link)
	id := strings.TrimSpace(alice.must("send", "bob", "sent while bob sleeps"))
	waitLogCount(t, alice, "msg=deliveryDeferred", 2) // two delivery attempts failed
	for _, m := range alice.messages("bob") {
		if m.ID == id && m.State != "queued" {
			t.Fatalf("state while bob is down: %q", m.State)
		}
	}
	bob.start() // on the same ports as before: saved in the profile
	alice.waitState("bob", id, "delivered")
	n := 0
	for _, m := range bob.messages("alice") {
		if m.Body == "sent while bob sleeps" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("bob has the message %d times, want exactly once", n)
	}
}

func TestCLISendOffline(t *testing.T) {
	t.Parallel()
	// With no node running, send queues durably; the next up delivers.
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	bob.start()
	link := strings.TrimSpace(bob.must("invite"))
	alice.must("contacts", "add", link)
	id := strings.TrimSpace(alice.must("send", "bob", "written on the train"))
	if st := alice.messages("bob")[0].State; st != "queued" {
		t.Fatalf("offline send state %q", st)
	}
	alice.start()
	alice.waitState("bob", id, "delivered")
}

func TestCLIBootstrap(t *testing.T) {
	t.Parallel()
	a, b := newProfile(t, "a"), newProfile(t, "b")
	a.must("init", "--name", "a", "--no-passphrase")
	b.must("init", "--name", "b", "--no-passphrase")
	a.start("--listen", "/ip4/127.0.0.1/tcp/0")
	var st struct {
		PeerID         string   `json:"peerId"`
		Addrs          []string `json:"addrs"`
		ConnectedPeers []string `json:"connectedPeers"`
	}
	json.Unmarshal([]byte(a.must("status", "--json")), &st)
	if len(st.Addrs) != 1 {
		t.Fatalf("a listens on %v", st.Addrs)
	}
	aPeer := st.PeerID
	b.start("--bootstrap", st.Addrs[0])
	deadline := time.Now().Add(20 * time.Second)
	for {
		json.Unmarshal([]byte(b.must("status", "--json")), &st)
		if len(st.ConnectedPeers) == 1 && st.ConnectedPeers[0] == aPeer {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b not connected to its bootstrap peer: %+v\n%s", st, b.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.fails("", "up", "--bootstrap", "/ip4/127.0.0.1/tcp/1") // profile in use
	c := newProfile(t, "c")
	c.must("init", "--name", "c", "--no-passphrase")
	c.fails("bootstrap", "up", "--bootstrap", "not-a-multiaddr")
}

// TestCLIOfflineBothEnds is issue 4's story with real processes: bob is
// offline and keeps his mail at a relay; alice writes, then goes offline
// too; bob comes up and reads it; alice comes back and sees it delivered.
func TestCLIOfflineBothEnds(t *testing.T) {
	t.Parallel()
	relay := startRelayProc(t, filepath.Join(t.TempDir(), "relay"), "--listen", "/ip4/127.0.0.1/tcp/0")
	host := relay.addrs[0]
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	bob.start("--mailbox-host", host)
	link := strings.TrimSpace(bob.must("invite"))
	bob.stop()

	alice.start()
	alice.must("contacts", "add", link)
	id := strings.TrimSpace(alice.must("send", "bob", "the grandchildren photos are in"))
	alice.waitState("bob", id, "sent") // deposited at bob's relay
	alice.stop()

	bob.start() // the mailbox host is remembered in the profile
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Bob learns alice from the message itself: until it is fetched,
		// he has no contact "alice".
		var got []message
		// The node's API first: the CLI only once it says so (poll_test.go).
		if ms, ok := bob.quickMessages("alice"); ok && !(len(ms) == 1 && ms[0].Body == "the grandchildren photos are in") {
			got = ms
		} else if out, _, code := bob.run("messages", "alice", "--json"); code == 0 {
			var conv struct {
				Messages []message `json:"messages"`
			}
			json.Unmarshal([]byte(out), &conv)
			got = conv.Messages
		}
		if len(got) == 1 && got[0].Body == "the grandchildren photos are in" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob never got the message: %+v\n%s", got, bob.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var mbs []struct {
		PeerID string    `json:"peerId"`
		LastOK time.Time `json:"lastOk"`
	}
	json.Unmarshal([]byte(bob.must("mailboxes", "--json")), &mbs)
	if len(mbs) != 1 || mbs[0].PeerID != relay.peer || mbs[0].LastOK.IsZero() {
		t.Errorf("bob's mailboxes: %+v", mbs)
	}
	// Alice configured no host: she has none, or (issue 14: hosts her
	// contacts vouch for) the one bob's card names, once her discovery
	// has run — never another.
	if out := alice.must("mailboxes"); !strings.Contains(out, "no mailbox hosts") && !strings.HasPrefix(strings.TrimSpace(out), relay.peer) {
		t.Errorf("alice's mailboxes: %q", out)
	}
	alice.start()
	alice.waitState("bob", id, "delivered")
	if got := bob.messages("alice"); len(got) != 1 {
		t.Fatalf("bob has %d messages, want exactly 1", len(got))
	}
	if _, errOut, code := alice.run("up", "--mailbox-host", "/ip4/127.0.0.1/tcp/1"); code != 2 || !strings.Contains(errOut, "ending in /p2p/") {
		t.Errorf("bad --mailbox-host: exit %d, %q", code, errOut)
	}
}

// TestCLIUpStopWhileWaiting: Ctrl-C on `samizdat up` while it waits for a
// profile to be created in the web app is a normal stop (exit 0, api.json
// removed), not an error.
func TestCLIUpStopWhileWaiting(t *testing.T) {
	t.Parallel()
	p := newProfile(t, "empty")
	p.start()
	p.stop()
}
