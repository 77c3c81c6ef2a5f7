package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCLIRevokeReachesContactsAtOnce (issue 17): linking a phone and
// revoking it each push alice's new card to bob at once. Bob's message
// reaches the phone with no message of alice's in between; after alice
// revokes the phone, and still without writing, bob drops the phone from
// his fan-out: what he sends next never reaches it; the phone, told by
// the laptop that it was removed, sends nothing more.
func TestCLIRevokeReachesContactsAtOnce(t *testing.T) {
	t.Parallel()
	alice, bob, phone := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "phone")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.start()
	bob.start()
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")))
	id := strings.TrimSpace(alice.must("send", "bob", "hello"))
	alice.waitState("bob", id, "delivered")

	phoneID, _, _ := linkNew(t, phone, alice, "phone")
	phone.start()
	// The card listing the phone was pushed: bob fans out to it although
	// alice wrote nothing since.
	id = strings.TrimSpace(bob.must("send", "alice", "hi both"))
	bob.waitState("alice", id, "delivered")
	waitMessage(t, phone, "bob", "hi both", false)
	waitMessage(t, alice, "bob", "hi both", false)

	alice.must("devices", "revoke", phoneID[len(phoneID)-8:])
	waitLogCount(t, bob, "msg=deviceDropped", 1) // the pushed card, applied
	id = strings.TrimSpace(bob.must("send", "alice", "after the revocation"))
	bob.waitState("alice", id, "delivered")
	waitMessage(t, alice, "bob", "after the revocation", false)
	// The phone, told by the laptop, sends nothing more (a phone that
	// writes before it is told: bob refuses it, TestCLILinkedDevice).
	waitLogCount(t, phone, "msg=deviceRevoked", 1)
	phone.fails("removed from your account", "send", "bob", "written on the revoked phone")
	// A copy of bob's message for the phone, had he queued one, would
	// have gone out with the laptop's and arrived by now.
	for _, m := range phone.messages("bob") {
		if m.Body == "after the revocation" {
			t.Fatal("the revoked phone got bob's message sent after the revocation")
		}
	}
	for _, m := range bob.messages("alice") {
		if strings.Contains(m.Body, "revoked phone") {
			t.Fatal("bob stored a message from the revoked phone")
		}
	}
}

// TestCLISentCopyThroughMailbox (issue 17): alice's phone is off when her
// laptop sends bob a text and a file. The laptop leaves the phone's sent
// copies at the phone's relay and goes off too; the phone, back, shows both
// as sent and saves the file, fetched from bob, who has it.
func TestCLISentCopyThroughMailbox(t *testing.T) {
	t.Parallel()
	relay := startRelayProc(t, filepath.Join(t.TempDir(), "relay"), "--listen", "/ip4/127.0.0.1/tcp/0")
	host := []string{"--mailbox-host", relay.addrs[0]}
	alice, bob, phone := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "phone")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.start(host...)
	bob.start(host...)
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")))
	id := strings.TrimSpace(alice.must("send", "bob", "hello"))
	alice.waitState("bob", id, "delivered")
	linkNew(t, phone, alice, "phone")
	phone.start(host...)
	// The phone writes once: the laptop gets its own card (its mailbox).
	id = strings.TrimSpace(phone.must("send", "bob", "hello from the phone"))
	phone.waitState("bob", id, "delivered")
	waitMessage(t, alice, "bob", "hello from the phone", true)
	phone.stop()

	data := make([]byte, 700<<10)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "notes.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	text := strings.TrimSpace(alice.must("send", "bob", "written while the phone is off"))
	file := strings.TrimSpace(alice.must("send", "bob", "--file", path, "the notes"))
	alice.waitState("bob", text, "delivered")
	alice.waitState("bob", file, "delivered")
	bob.eventuallyTransfer(t, "bob has the file", file, func(tr transfer) bool { return tr.State == "complete" })
	// Both sent copies left at the phone's relay (the laptop logs what
	// a mailbox host accepted for a device of hers).
	eventuallyCLI(t, "both sent copies deposited for the phone", func() bool { return ownCopiesDeposited(alice) >= 2 })
	alice.stop()

	phone.start(host...)
	waitMessage(t, phone, "bob", "written while the phone is off", true)
	waitMessage(t, phone, "bob", "the notes", true)
	phone.eventuallyTransfer(t, "the phone has the file", file, func(tr transfer) bool { return tr.State == "complete" })
	out := filepath.Join(t.TempDir(), "saved.bin")
	phone.must("save", file, out)
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("the file saved on the phone differs from the one sent")
	}
}

// ownCopiesDeposited counts the sent copies p's node deposited for its
// own other devices (its debug log, msg=deviceCopiesDeposited own=true).
func ownCopiesDeposited(p *profile) int {
	n := 0
	for _, l := range strings.Split(p.log.String(), "\n") {
		if !strings.Contains(l, "msg=deviceCopiesDeposited") || !strings.Contains(l, "own=true") {
			continue
		}
		if _, c, ok := strings.Cut(l, "count="); ok {
			k, _ := strconv.Atoi(strings.Fields(c)[0])
			n += k
		}
	}
	return n
}
