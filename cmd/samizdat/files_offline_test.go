package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

type hostedTransfer struct {
	MessageID string `json:"messageId"`
	State     string `json:"state"`
	HostState string `json:"hostState"`
	HostError string `json:"hostError"`
}

func (p *profile) hostedFiles() map[string]hostedTransfer {
	p.t.Helper()
	var ts []hostedTransfer
	if err := json.Unmarshal([]byte(p.must("files", "--json")), &ts); err != nil {
		p.t.Fatal(err)
	}
	return byMessage(ts)
}

// quickHostedFiles is hostedFiles through the API (poll_test.go).
func (p *profile) quickHostedFiles() (map[string]hostedTransfer, bool) {
	var ts []hostedTransfer
	ok := p.viaAPI(&ts, func(ctx context.Context, c *apiclient.Client) (any, error) { return c.Files(ctx) })
	return byMessage(ts), ok
}

func byMessage(ts []hostedTransfer) map[string]hostedTransfer {
	out := map[string]hostedTransfer{}
	for _, tr := range ts {
		out[tr.MessageID] = tr
	}
	return out
}

// TestCLIFileOffline: bob is offline; alice sends him a small file and a
// large one; the small one goes to bob's relay, the large one is over the
// relay's file quota and says it waits with alice (files --json and
// files); alice stops; bob comes up and completes the small file from his
// relay alone.
func TestCLIFileOffline(t *testing.T) {
	t.Parallel()
	relay := startRelayProc(t, filepath.Join(t.TempDir(), "relay"), "--listen", "/ip4/127.0.0.1/tcp/0", "--mailbox-blob-quota", "2MiB")
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	bob.start("--mailbox-host", relay.addrs[0])
	link := strings.TrimSpace(bob.must("invite"))
	bob.stop()

	dir := t.TempDir()
	small, large := make([]byte, 600<<10), make([]byte, 3<<20)
	rand.Read(small)
	rand.Read(large)
	os.WriteFile(filepath.Join(dir, "small.bin"), small, 0o600)
	os.WriteFile(filepath.Join(dir, "large.bin"), large, 0o600)

	alice.start()
	alice.must("contacts", "add", link)
	smallID := strings.TrimSpace(alice.must("send", "bob", "--file", filepath.Join(dir, "small.bin")))
	largeID := strings.TrimSpace(alice.must("send", "bob", "--file", filepath.Join(dir, "large.bin")))
	atHosts := func(fs map[string]hostedTransfer) bool {
		return fs[smallID].HostState == "deposited" && fs[largeID].HostState == "over-quota"
	}
	eventuallyQuick(t, "the small file at bob's relay, the large one over quota", func() (bool, bool) {
		fs, ok := alice.quickHostedFiles()
		return atHosts(fs), ok
	}, func() bool { return atHosts(alice.hostedFiles()) })
	if e := alice.hostedFiles()[largeID].HostError; !strings.Contains(e, "over quota") {
		t.Errorf("the large file's hostError: %q", e)
	}
	if out := alice.must("files"); !strings.Contains(out, "too large for the contact's mailbox hosts") {
		t.Errorf("files does not say the large file waits:\n%s", out)
	}
	alice.stop()

	bob.start()
	eventuallyQuick(t, "bob has the small file from his relay", func() (bool, bool) {
		fs, ok := bob.quickHostedFiles()
		return fs[smallID].State == "complete", ok
	}, func() bool { return bob.hostedFiles()[smallID].State == "complete" })
	out := filepath.Join(t.TempDir(), "got.bin")
	bob.must("save", smallID, out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, small) {
		t.Fatal("the saved file differs")
	}
	if st := bob.hostedFiles()[largeID].State; st == "complete" {
		t.Fatalf("the large file completed without its sender: %s", st)
	}
}
