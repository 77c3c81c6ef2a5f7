package main

// End-to-end tests of `samizdat relay` and `samizdat up --serve-mailbox`:
// the real binary, reached by a loopback p2p node in the test process.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// relayProc is a running `samizdat relay`.
type relayProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	out   *syncBuffer
	log   *syncBuffer
	done  chan error
	peer  string
	addrs []string
}

// startRelayProc runs `samizdat --profile dir relay args...` and waits for
// it to print its addresses.
func startRelayProc(t *testing.T, dir string, args ...string) *relayProc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--profile", dir, "relay", "--log-level", "debug"}, args...)...)
	cmd.Env = append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE=")
	r := &relayProc{t: t, cmd: cmd, out: &syncBuffer{}, log: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = r.out, r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(r.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, line := range strings.Split(r.out.String(), "\n") {
			if p, ok := strings.CutPrefix(line, "samizdat relay is up: "); ok {
				r.peer = p
			}
			if a, ok := strings.CutPrefix(line, "listening: "); ok {
				r.addrs = append(r.addrs, a)
			}
		}
		if r.peer != "" && len(r.addrs) > 0 {
			return r
		}
		r.addrs = nil
		select {
		case err := <-r.done:
			t.Fatalf("samizdat relay exited: %v\nstdout: %s\nstderr: %s", err, r.out, r.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("samizdat relay did not come up\n%s", r.log)
		}
	}
}

// stop sends SIGINT (Ctrl-C) and checks the relay exits with status 0.
func (r *relayProc) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("samizdat relay exited with %v after Ctrl-C\n%s", err, r.log)
		}
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		r.t.Errorf("samizdat relay did not stop on Ctrl-C")
	}
	r.cmd = nil
}

// loopbackNode is an in-process p2p node that listens nowhere and dials
// only loopback.
func loopbackNode(t *testing.T) *p2p.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := p2p.New(ctx, p2p.Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func e2eCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCLIRelay(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "relay")
	r := startRelayProc(t, dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--quota", "1MiB", "--mailbox-quota", "4KiB", "--ttl", "1h")
	if len(r.addrs) != 1 || !strings.HasPrefix(r.addrs[0], "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(r.addrs[0], "/p2p/"+r.peer) {
		t.Fatalf("relay addrs %v (peer %s)", r.addrs, r.peer)
	}
	c := loopbackNode(t)
	c.AddAddrs(r.peer, r.addrs)
	key, err := mailbox.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	envA := bytes.Repeat([]byte("A"), 3000)
	if err := mailbox.Deposit(e2eCtx(t), c, r.peer, mailbox.KeyID(key), envA); err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	// --mailbox-quota 4KiB: a second 3000-byte envelope does not fit.
	if err := mailbox.Deposit(e2eCtx(t), c, r.peer, mailbox.KeyID(key), bytes.Repeat([]byte("B"), 3000)); !errors.Is(err, mailbox.ErrQuotaFull) {
		t.Fatalf("Deposit over --mailbox-quota: %v, want ErrQuotaFull", err)
	}
	items, err := mailbox.Fetch(e2eCtx(t), c, r.peer, key, 0)
	if err != nil || len(items) != 1 || !bytes.Equal(items[0].Envelope, envA) {
		t.Fatalf("Fetch = %d items, %v", len(items), err)
	}

	// A second relay on the profile is refused.
	_, errOut, code := (&profile{t: t, dir: dir}).run("relay", "--listen", "/ip4/127.0.0.1/tcp/0")
	if code != 1 || !strings.Contains(errOut, "in use") {
		t.Fatalf("second relay: exit %d, stderr %q", code, errOut)
	}

	r.stop()
	for _, f := range []string{"relay.key", "mailbox.key", "mailbox.db"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		} else if f != "mailbox.db" && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", f, fi.Mode().Perm())
		}
	}
	if len(grepTree(t, dir, envA[:64])) != 0 {
		t.Error("envelope bytes found in the clear in the relay's profile")
	}
	// ... and yet the relay holds it: its own key reads it back (so the
	// scan above looked at the real holdings, encrypted).
	if plain, held, err := app.MailboxPlaintext(dir); err != nil || held != 1 || !bytes.Contains(plain, envA) {
		t.Fatalf("the relay's mailbox.db, decrypted with its key: %d envelopes, envelope found %v, err %v", held, bytes.Contains(plain, envA), err)
	}

	// Restarted: same peer id, the envelope is still there.
	r2 := startRelayProc(t, dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--metrics", "127.0.0.1:0")
	if r2.peer != r.peer {
		t.Fatalf("peer id changed across restart: %s → %s", r.peer, r2.peer)
	}
	c2 := loopbackNode(t)
	c2.AddAddrs(r2.peer, r2.addrs)
	items, err = mailbox.Fetch(e2eCtx(t), c2, r2.peer, key, 0)
	if err != nil || len(items) != 1 || !bytes.Equal(items[0].Envelope, envA) {
		t.Fatalf("Fetch after restart = %d items, %v", len(items), err)
	}
	// --metrics: the operator's scraper sees the fetch and the holdings.
	metrics := scrapeRelay(t, r2)
	for _, want := range []string{"samizdat_relay_fetched_envelopes_total 1\n", "samizdat_relay_stored_envelopes 1\n", "samizdat_relay_quota_bytes 1.073741824e+09\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	if strings.Contains(metrics, r2.peer) || strings.Contains(metrics, c2.PeerID()) {
		t.Error("the metrics name a peer")
	}
	r2.stop()
	if !strings.Contains(r2.out.String(), "shutting down") {
		t.Errorf("relay stdout: %q", r2.out)
	}
}

func TestCLIRelayBadFlags(t *testing.T) {
	t.Parallel()
	p := newProfile(t, "relay")
	for _, tc := range []struct{ args []string }{
		{[]string{"relay", "--quota", "lots"}},
		{[]string{"relay", "--quota", "-1GiB"}},
		{[]string{"relay", "--quota", "0"}},
		{[]string{"relay", "--mailbox-quota", "12XB"}},
		{[]string{"relay", "--ttl", "0s"}},
		{[]string{"relay", "--metrics", "0.0.0.0:9464"}},
		{[]string{"relay", "--metrics", "localhost:9464"}},
	} {
		_, errOut, code := p.run(tc.args...)
		if code != 2 || !strings.HasPrefix(errOut, "samizdat: --") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and a message naming the flag", tc.args, code, errOut)
		}
	}
	if _, err := os.Stat(p.dir); err == nil {
		t.Error("a bad flag created the profile directory")
	}
	// A user's profile is not a relay's.
	p.must("init", "--name", "u", "--no-passphrase")
	p.fails("up --serve-mailbox", "relay", "--listen", "/ip4/127.0.0.1/tcp/0")
}

func TestCLIUpServeMailbox(t *testing.T) {
	t.Parallel()
	p := newProfile(t, "host")
	p.must("init", "--name", "host", "--no-passphrase")
	p.start("--listen", "/ip4/127.0.0.1/tcp/0", "--dht=false", "--serve-mailbox", "--mailbox-quota", "1MiB")
	var st struct {
		PeerID string   `json:"peerId"`
		Addrs  []string `json:"addrs"`
	}
	if err := json.Unmarshal([]byte(p.must("status", "--json")), &st); err != nil || len(st.Addrs) == 0 {
		t.Fatalf("status: %v %+v", err, st)
	}
	c := loopbackNode(t)
	c.AddAddrs(st.PeerID, st.Addrs)
	key, err := mailbox.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := mailbox.Deposit(e2eCtx(t), c, st.PeerID, mailbox.KeyID(key), []byte("sealed")); err != nil {
		t.Fatalf("Deposit: %v\n%s", err, p.log)
	}
	items, err := mailbox.Fetch(e2eCtx(t), c, st.PeerID, key, 0)
	if err != nil || len(items) != 1 || string(items[0].Envelope) != "sealed" {
		t.Fatalf("Fetch = %d items, %v", len(items), err)
	}
	p.stop()
	if _, err := os.Stat(filepath.Join(p.dir, "mailbox.db")); err != nil {
		t.Fatalf("no mailbox.db in the profile: %v", err)
	}
}

// scrapeRelay reads the metrics of a relay started with --metrics, at the
// address it printed.
func scrapeRelay(t *testing.T, r *relayProc) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var url string
	for url == "" {
		for _, line := range strings.Split(r.out.String(), "\n") {
			if u, ok := strings.CutPrefix(line, "metrics: "); ok {
				url = u
			}
		}
		if url == "" {
			if time.Now().After(deadline) {
				t.Fatalf("no metrics line in %q", r.out)
			}
			time.Sleep(20 * time.Millisecond) // polling the output
		}
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}
