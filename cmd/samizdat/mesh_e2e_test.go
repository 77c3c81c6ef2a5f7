package main

// Issue 13: a mesh carrier keeps what it carries in its encrypted store,
// so that a carrier killed and restarted between meeting alice and meeting
// bob still delivers. Real `samizdat up` processes on loopback: a meeting
// is the carrier started with the other node as its --bootstrap peer
// (loopback counts as the LAN); alice and bob never run at the same time.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/store"
)

// kill SIGKILLs the profile's daemon (no shutdown of any kind).
func (p *profile) kill() {
	p.t.Helper()
	if p.up == nil {
		return
	}
	if err := p.up.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	<-p.done
	p.up, p.cl = nil, nil
}

// p2pAddr is the node's first listen address with its peer id.
func (p *profile) p2pAddr() string {
	p.t.Helper()
	var st struct {
		Addrs []string `json:"addrs"`
	}
	if err := json.Unmarshal([]byte(p.must("status", "--json")), &st); err != nil || len(st.Addrs) == 0 {
		p.t.Fatalf("%s: status: %v %+v", p.name, err, st)
	}
	return st.Addrs[0]
}

func (p *profile) meshStatus() labMeshStatus {
	p.t.Helper()
	var st labMeshStatus
	if err := json.Unmarshal([]byte(p.must("status", "--json")), &st); err != nil || st.Mesh == nil {
		p.t.Fatalf("%s: status --json: %v %+v", p.name, err, st)
	}
	return st
}

// carriedOnDisk counts the envelopes and receipts in the profile's
// encrypted store, read beside the running daemon with the profile's key:
// what a SIGKILL now would leave.
func (p *profile) carriedOnDisk() (envs, receipts int) {
	p.t.Helper()
	k, err := os.ReadFile(filepath.Join(p.dir, app.KeyFile))
	if err != nil {
		p.t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(k)))
	if err != nil {
		p.t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(p.dir, app.DBFile), key)
	if err != nil {
		p.t.Fatal(err)
	}
	defer st.Close()
	var items []store.CarriedItem
	if err := st.View(context.Background(), func(tx *store.Tx) (err error) { items, err = tx.CarriedItems(); return err }); err != nil {
		p.t.Fatal(err)
	}
	for _, it := range items {
		if it.Envelope != nil {
			envs++
		} else {
			receipts++
		}
	}
	return envs, receipts
}

// find reports where needle is in the profile's decrypted store (no
// daemon running): what its owner, or anyone with its key, can read.
func (p *profile) find(needle string) []string {
	p.t.Helper()
	return findInStore(p.t, p.dir, needle)
}

// findInStore reports where needle is in the decrypted store of the
// profile in dir (a profile without a passphrase, no daemon running).
func findInStore(t *testing.T, dir, needle string) []string {
	t.Helper()
	off, err := app.OpenOffline(context.Background(), dir, app.KeySource{})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	found, err := off.Store.Find(context.Background(), []byte(needle))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool, logs ...*profile) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			for _, p := range logs {
				t.Logf("%s's log:\n%s", p.name, p.log)
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCLIMeshCarrierRestart(t *testing.T) {
	t.Parallel()
	alice, bob, carrier := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "carrier")
	for _, p := range []*profile{alice, bob, carrier} {
		p.must("init", "--name", p.name, "--no-passphrase")
	}
	// Long sync intervals: what moves, moves at a meeting (and the syncs a
	// meeting sets off), not at a periodic round.
	up := func(p *profile, args ...string) {
		p.start(append([]string{"--listen", "/ip4/127.0.0.1/tcp/0", "--dht=false", "--mesh-sync-interval", "1h"}, args...)...)
	}
	// Alice and bob met before: they hold each other's cards, made by
	// their running nodes (which name their mesh mailbox ids).
	up(bob)
	bobLink := strings.TrimSpace(bob.must("invite"))
	bob.stop()
	up(alice)
	alice.must("contacts", "add", bobLink, "--name", "bob")
	bob.must("contacts", "add", strings.TrimSpace(alice.must("invite")), "--name", "alice")

	const secret = "the carrier restarted and still had it 7c41"
	id := strings.TrimSpace(alice.must("send", "bob", secret))
	up(carrier, "--bootstrap", alice.p2pAddr())
	waitFor(t, 30*time.Second, "the carrier to hold alice's envelope on disk", func() bool {
		envs, _ := carrier.carriedOnDisk()
		return envs == 1
	}, alice, carrier)
	carrier.kill()
	alice.stop()

	// Restarted alone, it carries the envelope again.
	up(carrier)
	if st := carrier.meshStatus(); st.Mesh.Carried != 1 {
		t.Fatalf("the restarted carrier carries %d envelopes, want 1", st.Mesh.Carried)
	}
	carrier.kill()
	up(bob)
	up(carrier, "--bootstrap", bob.p2pAddr())
	waitFor(t, 30*time.Second, "bob to receive alice's message", func() bool { return len(bob.messages("alice")) > 0 }, bob, carrier)
	// Bob's ack and receipt go back to the carrier during this meeting;
	// the carrier drops alice's envelope on the receipt.
	waitFor(t, 30*time.Second, "the carrier to hold bob's ack and receipt on disk", func() bool {
		envs, receipts := carrier.carriedOnDisk()
		st := carrier.meshStatus()
		return envs == 1 && receipts > 0 && st.Mesh.Carried == 1 && st.Mesh.Receipts > 0
	}, bob, carrier)
	carrier.kill()
	bob.stop()

	up(alice)
	up(carrier, "--bootstrap", alice.p2pAddr())
	alice.waitState("bob", id, "delivered")
	got := bob.messages("alice")
	if len(got) != 1 || got[0].Body != secret || got[0].Outgoing {
		t.Fatalf("bob's messages: %+v", got)
	}
	carrier.stop()
	alice.stop()

	// What the carrier's operator can read: its decrypted store and its
	// log hold no plaintext. (Bob's store does: the scan can see it.)
	if found := carrier.find(secret); len(found) > 0 {
		t.Errorf("plaintext in the carrier's decrypted store: %v", found)
	}
	if strings.Contains(carrier.log.String(), secret) {
		t.Error("plaintext in the carrier's log")
	}
	if found := bob.find(secret); len(found) == 0 {
		t.Error("the scan does not see the plaintext in bob's store")
	}
}
