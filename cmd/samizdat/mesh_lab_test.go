package main

// Lab test of mesh mode (issue 8) with real processes in network
// namespaces: three LANs with no route between them, found by mDNS only
// inside the namespaces. Needs root; skipped otherwise.

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/testnet"
)

// labNode is one user's profile run by a process inside a namespace.
type labNode struct {
	t    *testing.T
	name string
	dir  string
	ns   *testnet.Netns
	proc *testnet.Proc
}

var labEnv = []string{"SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE="}

// cli runs a samizdat command for the node inside its namespace (so that
// it reaches the node's API on the namespace's loopback).
func (n *labNode) cli(args ...string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := n.ns.Command(ctx, binary, append([]string{"--profile", n.dir}, args...)...)
	cmd.Env = append(os.Environ(), labEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		n.t.Fatalf("%s: samizdat %s: %v\n%s", n.name, strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// offline runs a command on the profile in the root namespace while no
// node runs (init, invite, add: no network involved).
func (n *labNode) offline(args ...string) string {
	n.t.Helper()
	cmd := exec.Command(binary, append([]string{"--profile", n.dir}, args...)...)
	cmd.Env = append(os.Environ(), labEnv...)
	out, err := cmd.Output()
	if err != nil {
		n.t.Fatalf("%s: samizdat %s: %v", n.name, strings.Join(args, " "), err)
	}
	return string(out)
}

func (n *labNode) up() {
	n.t.Helper()
	n.proc = n.ns.Start(labEnv, binary, "--profile", n.dir, "up", "--log-level", "debug",
		"--listen", "/ip4/0.0.0.0/tcp/4001", "--dht=false", "--mdns", "--mesh-sync-interval", "2s")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(n.dir, "api.json")); err == nil {
			return
		}
		select {
		case <-n.proc.Done():
			n.t.Fatalf("%s: samizdat up exited: %v\n%s", n.name, n.proc.Err(), n.proc.Stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: samizdat up did not come up\n%s", n.name, n.proc.Stderr)
		}
	}
}

type labMeshStatus struct {
	Mesh *struct {
		MDNS     bool `json:"mdns"`
		Carried  int  `json:"carried"`
		Own      int  `json:"own"`
		Receipts int  `json:"receipts"`
	} `json:"mesh"`
}

func (n *labNode) meshStatus() labMeshStatus {
	n.t.Helper()
	var st labMeshStatus
	if err := json.Unmarshal([]byte(n.cli("status", "--json")), &st); err != nil || st.Mesh == nil {
		n.t.Fatalf("%s: status --json: %v %+v", n.name, err, st)
	}
	return st
}

func (n *labNode) messages(contact string) []message {
	n.t.Helper()
	var conv struct {
		Messages []message `json:"messages"`
	}
	if err := json.Unmarshal([]byte(n.cli("messages", contact, "--json")), &conv); err != nil {
		n.t.Fatal(err)
	}
	return conv.Messages
}

// labWait polls cond every 200 ms for up to limit.
func labWait(t *testing.T, limit time.Duration, what string, cond func() bool, logs ...*labNode) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			for _, n := range logs {
				t.Logf("%s's log:\n%s", n.name, n.proc.Stderr)
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// moveTo unplugs the carrier's cable (the bridge-side veth end) from one
// LAN's bridge, plugs it into another's, and gives the carrier an address
// there, like a phone joining another Wi-Fi.
func moveTo(t *testing.T, carrier *testnet.Netns, port string, from, to *testnet.Bridge, addr string) {
	t.Helper()
	from.NS.MustRun("ip", "link", "set", port, "netns", to.NS.Name)
	to.NS.MustRun("ip", "link", "set", port, "master", to.Name)
	to.NS.MustRun("ip", "link", "set", port, "up")
	carrier.Readdress("eth0", addr)
	carrier.MustRun("ip", "route", "replace", "224.0.0.0/4", "dev", "eth0")
}

// TestLabMeshCarrier: alice in LAN A, bob in LAN C, no route between the
// LANs. A carrier joins A, then moves to B, then C, then back to A. Bob
// gets alice's message exactly once, alice sees it delivered after the
// carrier is back, and the carrier's storage never holds the plaintext.
func TestLabMeshCarrier(t *testing.T) {
	t.Parallel()
	testnet.RequireRoot(t)
	lanA, lanB, lanC := testnet.NewBridge(t, "lana"), testnet.NewBridge(t, "lanb"), testnet.NewBridge(t, "lanc")
	mk := func(name string) *labNode {
		return &labNode{t: t, name: name, dir: filepath.Join(t.TempDir(), name), ns: testnet.NewNetns(t, name[:3])}
	}
	alice, bob, carrier := mk("alice"), mk("bob"), mk("carrier")
	lanA.Attach(t, alice.ns, "eth0", "198.18.1.10/24")
	lanC.Attach(t, bob.ns, "eth0", "198.18.3.10/24")
	port := lanA.Attach(t, carrier.ns, "eth0", "198.18.1.20/24")
	for _, n := range []*labNode{alice, bob, carrier} {
		n.ns.MustRun("ip", "route", "replace", "224.0.0.0/4", "dev", "eth0")
		n.offline("init", "--name", n.name, "--no-passphrase")
		n.up()
	}
	// Alice and bob met before the shutdown: they hold each other's cards
	// (made by their running nodes: cards list the mesh mailbox id).
	bob.cli("contacts", "add", strings.TrimSpace(alice.cli("invite")), "--name", "alice")
	alice.cli("contacts", "add", strings.TrimSpace(bob.cli("invite")), "--name", "bob")
	if st := alice.meshStatus(); !st.Mesh.MDNS {
		t.Fatal("alice: mDNS off")
	}
	const secret = "meet at the north gate at dawn 51c0"
	id := strings.TrimSpace(alice.cli("send", "bob", secret))
	labWait(t, 60*time.Second, "the carrier to take alice's envelope", func() bool {
		return carrier.meshStatus().Mesh.Carried == 1
	}, alice, carrier)

	moveTo(t, carrier.ns, port, lanA, lanB, "198.18.2.20/24")
	time.Sleep(time.Second) // passing through an empty LAN
	moveTo(t, carrier.ns, port, lanB, lanC, "198.18.3.20/24")
	labWait(t, 90*time.Second, "bob to receive alice's message", func() bool {
		return len(bob.messages("alice")) > 0
	}, bob, carrier)
	// Bob's ack rides back: the carrier drops alice's envelope on bob's
	// receipt and takes the ack.
	labWait(t, 60*time.Second, "the carrier to take bob's ack", func() bool {
		st := carrier.meshStatus()
		return st.Mesh.Receipts > 0 && st.Mesh.Carried == 1
	}, bob, carrier)

	moveTo(t, carrier.ns, port, lanC, lanA, "198.18.1.20/24")
	labWait(t, 90*time.Second, "alice to see her message delivered", func() bool {
		for _, m := range alice.messages("bob") {
			if m.ID == id && m.State == "delivered" {
				return true
			}
		}
		return false
	}, alice, carrier)
	got := bob.messages("alice")
	if len(got) != 1 || got[0].Body != secret || got[0].Outgoing {
		t.Fatalf("bob's messages: %+v", got)
	}

	// The carrier never held the plaintext: not in its store, not in its
	// logs.
	if err := carrier.proc.Stop(20 * time.Second); err != nil {
		t.Errorf("carrier exit: %v", err)
	}
	if strings.Contains(carrier.proc.Stderr.String(), secret) {
		t.Error("plaintext in the carrier's log")
	}
	// What the carrier's operator can read: its store decrypted with its
	// own key (a scan of the encrypted file alone would prove nothing);
	// bob's store, scanned the same way, does hold it.
	if found := findInStore(t, carrier.dir, secret); len(found) > 0 {
		t.Errorf("plaintext in the carrier's decrypted store: %v", found)
	}
	if err := bob.proc.Stop(20 * time.Second); err != nil {
		t.Errorf("bob exit: %v", err)
	}
	if found := findInStore(t, bob.dir, secret); len(found) == 0 {
		t.Error("the scan does not see the plaintext in bob's store")
	}
	_ = filepath.WalkDir(carrier.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("plaintext in the carrier's %s", path)
		}
		return nil
	})
}
