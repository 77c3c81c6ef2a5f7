package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/identity"
)

// TestCLIShortInvites is issue 15's "two daemons exchange contacts with
// 200-character links and deliver a message", through the real binary:
// each adds the other from a short link (no card in it: fetched from the
// inviter's node over /samizdat/card/1), then they talk. Bad links fail
// with a clear error and store nothing.
func TestCLIShortInvites(t *testing.T) {
	t.Parallel()
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.start()
	bob.start()

	short := func(p *profile) string {
		t.Helper()
		var inv struct {
			AccountID string `json:"accountId"`
			Link      string `json:"link"`
			Short     string `json:"short"`
		}
		if err := json.Unmarshal([]byte(p.must("invite", "--json")), &inv); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(inv.Link, "samizdat:") || !strings.HasPrefix(inv.Short, "samizdat:") || len(inv.Short) > 200 {
			t.Fatalf("%s: invite --json: %+v", p.name, inv)
		}
		t.Logf("%s: short link of %d characters (the full one: %d)", p.name, len(inv.Short), len(inv.Link))
		return inv.Short
	}
	aliceLink, bobLink := short(alice), short(bob)
	// The plain command still prints the full link alone on stdout, the
	// short one on stderr; --short prints the short one, --qr its code.
	if out, errOut, code := bob.run("invite"); code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "?card=") || !strings.Contains(errOut, "short link") {
		t.Fatalf("invite: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	qr := bob.must("invite", "--short", "--qr")
	lines := strings.Split(strings.TrimSpace(qr), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(qr, "█") || !identity.IsShortInvite(last) || len(last) > 200 {
		t.Fatalf("invite --short --qr: last line %q", last)
	}
	// 57 modules (version 10) + 8 of quiet zone, two rows a line.
	if rows := len(lines) - 1; rows > (57+8+1)/2 {
		t.Fatalf("the short link's QR code has %d rows of text: larger than version 10", rows)
	}

	alice.must("contacts", "add", bobLink, "--name", "bob")
	bob.must("contacts", "add", aliceLink, "--name", "alice")
	id := strings.TrimSpace(alice.must("send", "bob", "added by a short link"))
	alice.waitState("bob", id, "delivered")
	if got := bob.messages("alice"); len(got) != 1 || got[0].Body != "added by a short link" {
		t.Fatalf("bob's messages: %+v", got)
	}
	reply := strings.TrimSpace(bob.must("send", "alice", "and back"))
	bob.waitState("alice", reply, "delivered")

	// Bad links: a clear error each, nothing stored.
	carol := newProfile(t, "carol")
	carol.must("init", "--name", "carol", "--no-passphrase")
	carol.start()
	carolLink := short(carol)
	si, err := identity.ParseShortInvite(carolLink)
	if err != nil {
		t.Fatal(err)
	}
	si.AccountKey = mustKey(t, bobLink) // carol's node, bob's account
	mismatch, err := identity.EncodeShortInvite(si)
	if err != nil {
		t.Fatal(err)
	}
	dave := newProfile(t, "dave")
	dave.must("init", "--name", "dave", "--no-passphrase")
	// (Issue 15's other flag: a cover name without ECH is a usage error.)
	if _, errOut, code := dave.run("up", "--ech-name", "cover.example.test"); code != 2 || !strings.Contains(errOut, "--ech-name needs --ech") {
		t.Fatalf("up --ech-name without --ech: exit %d, %q", code, errOut)
	}
	dave.fails("the contact card of this invite: the node is not running", "contacts", "add", bobLink) // no node: no fetch
	dave.start()
	tampered := []byte(bobLink)
	tampered[40] = map[bool]byte{true: 'b', false: 'a'}[tampered[40] == 'a']
	// Each fails alike with --json: exit 1, the message on stderr, nothing
	// on stdout for a script to mistake for a contact.
	fails := func(want, link string) {
		t.Helper()
		dave.fails(want, "contacts", "add", link)
		if out, errOut, code := dave.run("contacts", "add", "--json", link); code != 1 || out != "" || !strings.Contains(errOut, want) {
			t.Fatalf("contacts add --json: exit %d, stdout %q, stderr %q; want exit 1, nothing, %q", code, out, errOut, want)
		}
	}
	fails("invalid invite link: the link is damaged", bobLink[:len(bobLink)-12])
	fails("invalid invite link: the link is damaged", string(tampered))
	fails("belongs to another account", mismatch)
	carol.stop()
	fails("could not fetch the contact card of this invite: the inviter is not reachable", carolLink)
	if cs := dave.must("contacts", "--json"); strings.TrimSpace(cs) != "[]" {
		t.Fatalf("dave stored contacts from bad links: %s", cs)
	}
}

func mustKey(t *testing.T, link string) []byte {
	t.Helper()
	si, err := identity.ParseShortInvite(link)
	if err != nil {
		t.Fatal(err)
	}
	return si.AccountKey
}
