package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// bgCmd is a samizdat command left running in the background.
type bgCmd struct {
	cmd      *exec.Cmd
	out, err *syncBuffer
	done     chan error
	stdin    io.WriteCloser
}

func (p *profile) background(t *testing.T, withStdin bool, args ...string) *bgCmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	b := &bgCmd{out: &syncBuffer{}, err: &syncBuffer{}, done: make(chan error, 1)}
	b.cmd = exec.CommandContext(ctx, binary, append([]string{"--profile", p.dir}, args...)...)
	b.cmd.Env = append(append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE="), p.env...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.err
	if withStdin {
		var err error
		if b.stdin, err = b.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	return b
}

// line waits until the command printed a line starting with prefix and
// returns the rest of it.
func (b *bgCmd) line(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		lines := strings.Split(b.out.String(), "\n")
		for _, l := range lines[:len(lines)-1] { // whole lines only
			if s, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(s)
			}
		}
		select {
		case err := <-b.done:
			b.done <- err
			t.Fatalf("%v exited (%v) before printing %q\nstdout: %s\nstderr: %s", b.cmd.Args, err, prefix, b.out, b.err)
		case <-time.After(20 * time.Millisecond): // polling the output
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v printed no %q\nstdout: %s\nstderr: %s", b.cmd.Args, prefix, b.out, b.err)
		}
	}
}

func (b *bgCmd) wait(t *testing.T) {
	t.Helper()
	if err := <-b.done; err != nil {
		t.Fatalf("%v: %v\nstdout: %s\nstderr: %s", b.cmd.Args, err, b.out, b.err)
	}
}

// badDeviceInvite is an invite of a fresh account whose card names a
// device with a certificate signed by another key than the device's.
func badDeviceInvite(t *testing.T) string {
	id, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	peer := identity.DevicePeerID(pub)
	dev := identity.Device{PeerID: peer, Key: pub, Addrs: []string{"/ip4/127.0.0.1/tcp/9"},
		Signature: ed25519.Sign(wrong, identity.DeviceCertMessage(id.Public(), peer))}
	now := time.Now()
	signed, err := identity.SignCard(id, &identity.Card{Identity: id.Public(), Name: "mallory", Devices: []identity.Device{dev},
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), Serial: uint64(now.UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	inv := wire.Marshal(&wirepb.Invite{Version: wire.Version, SignedCard: signed})
	return identity.InviteScheme + identity.AccountID(id.Public()) + "?card=" + base64.RawURLEncoding.EncodeToString(inv)
}

// TestCLILinkBadInput is the "Bad input" of issue 17 with real processes:
// a tampered, stale or forged link code, a code tried by another account
// while alice's link runs, and the code used again, are each refused with
// the documented message, nothing stored; a card of alice's whose device
// list goes backwards (her invite from before the linking) and a card
// with a device certificate signed by the wrong key are refused by bob
// with his chat intact; the phone, revoked while it is offline, comes back
// and writes: bob refuses it, nothing of his lost, and it gets nothing
// sent after. No log holds the link code, its secret or the short code.
func TestCLILinkBadInput(t *testing.T) {
	t.Parallel()
	alice, bob, phone := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "phone")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.start()
	bob.start()
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")))
	id := strings.TrimSpace(alice.must("send", "bob", "hello bob"))
	alice.waitState("bob", id, "delivered")
	oldInvite := strings.TrimSpace(alice.must("invite")) // device list version 0

	link := phone.background(t, false, "link", "--yes", "--no-passphrase", "--device-name", "phone")
	code := link.line(t, "link: ")
	parsed, err := devices.ParseLink(code, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// Tampered: one character changed.
	i := len(devices.LinkScheme) + 12
	tampered := code[:i] + string("ab"[boolIdx(code[i] == 'a')]) + code[i+1:]
	failsUser(t, alice, "not a valid samizdat-link: code (mistyped or altered?)", "link", "accept", tampered, "--yes")
	// Stale: the same code, its expiry passed (the checksum made again).
	stale := *parsed
	stale.Expires = time.Now().Add(-time.Minute).Truncate(time.Second)
	failsUser(t, alice, "the link code has expired", "link", "accept", stale.String(), "--yes")
	// Forged: another secret around the same device (a valid checksum):
	// the new device refuses it, and goes on waiting.
	forged := *parsed
	forged.Secret = bytes.Repeat([]byte{7}, devices.SecretSize)
	failsUser(t, alice, "it does not take this link code", "link", "accept", forged.String(), "--yes")
	if l := alice.devices(); l.Version != 0 || len(l.Devices) != 1 {
		t.Fatalf("alice's devices after refused codes: %+v", l)
	}

	// Alice accepts the real code and compares; meanwhile bob, another
	// account, tries the same code: refused, and alice's link goes on.
	acc := alice.background(t, true, "link", "accept", code)
	codeOld := acc.line(t, "code: ")
	codeNew := link.line(t, "code: ")
	if codeOld != codeNew {
		t.Fatalf("codes: existing %q, new %q", codeOld, codeNew)
	}
	failsUser(t, bob, "it does not take this link code", "link", "accept", code, "--yes")
	if _, err := io.WriteString(acc.stdin, "y\n"); err != nil {
		t.Fatal(err)
	}
	acc.wait(t)
	link.wait(t)
	if !strings.Contains(acc.out.String(), "linked device ") {
		t.Fatalf("link accept printed %q", acc.out)
	}
	// Used: the new device no longer waits.
	failsUser(t, bob, "cannot reach the new device", "link", "accept", code, "--yes")
	failsUser(t, alice, "cannot reach the new device", "link", "accept", code, "--yes")
	l := alice.devices()
	if l.Version != 1 || len(l.Devices) != 2 {
		t.Fatalf("alice's devices after linking: %+v", l)
	}
	phoneID := l.Devices[1].ID
	if b := bob.devices(); b.Version != 0 || len(b.Devices) != 1 {
		t.Fatalf("bob's devices after his refused attempt: %+v", b)
	}

	// Bob gets alice's card with version 1; her invite from before
	// (version 0) is then refused, his chat with her intact.
	id = strings.TrimSpace(alice.must("send", "bob", "I linked a phone"))
	alice.waitState("bob", id, "delivered")
	failsUser(t, bob, "older device list", "contacts", "add", oldInvite)
	failsUser(t, bob, "names a device that did not certify it", "contacts", "add", badDeviceInvite(t))
	checkChat := func(want ...string) {
		t.Helper()
		var contacts []struct{ Name string }
		if err := json.Unmarshal([]byte(bob.must("contacts", "--json")), &contacts); err != nil || len(contacts) != 1 || contacts[0].Name != "alice" {
			t.Fatalf("bob's contacts: %+v %v", contacts, err)
		}
		got := bob.messages("alice")
		if len(got) != len(want) {
			t.Fatalf("bob's chat with alice: %+v, want %q", got, want)
		}
		for i, m := range got {
			if m.Body != want[i] {
				t.Fatalf("bob's chat with alice: %+v, want %q", got, want)
			}
		}
	}
	checkChat("hello bob", "I linked a phone")

	// The phone writes once, then is lost (stopped) and revoked from the
	// laptop while it is offline; bob learns the new card.
	phone.start()
	id = strings.TrimSpace(phone.must("send", "bob", "hello from the phone"))
	phone.waitState("bob", id, "delivered")
	phone.stop()
	phoneLog := phone.log.String()
	failsUser(t, alice, "names more than one device", "devices", "revoke", phoneID[:8]) // "12D3KooW": every device's
	alice.must("devices", "revoke", phoneID[len(phoneID)-8:])
	if l := alice.devices(); l.Version != 2 || !l.Devices[1].Revoked || l.Devices[1].ID != phoneID {
		t.Fatalf("alice's devices after revoking the offline phone: %+v", l)
	}
	id = strings.TrimSpace(alice.must("send", "bob", "my phone is lost"))
	alice.waitState("bob", id, "delivered")
	// The phone comes back: the laptop's notice (the account-signed list
	// that revokes it) reaches it, and it refuses to send as alice. (Code
	// that ignores the notice is refused by bob: messenger's
	// TestRevokedDeviceRefusedAfterRestart.)
	phone.start()
	waitLogCount(t, phone, "msg=deviceRevoked", 1)
	failsUser(t, phone, "removed from your account", "send", "bob", "written on the lost phone")
	checkChat("hello bob", "I linked a phone", "hello from the phone", "my phone is lost")
	// Bob writes: alice's laptop gets it, the phone nothing.
	id = strings.TrimSpace(bob.must("send", "alice", "sorry about the phone"))
	bob.waitState("alice", id, "delivered")
	waitMessage(t, alice, "bob", "sorry about the phone", false)
	for _, m := range phone.messages("bob") {
		if m.Body == "sorry about the phone" || m.Body == "my phone is lost" {
			t.Fatalf("the revoked phone got %q, sent after its revocation", m.Body)
		}
	}

	// No log holds the link code, its secret or the short code.
	needles := []string{code[len(devices.LinkScheme):], hex.EncodeToString(parsed.Secret),
		base64.StdEncoding.EncodeToString(parsed.Secret), base64.RawURLEncoding.EncodeToString(parsed.Secret),
		base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(parsed.Secret), codeOld, strings.ReplaceAll(codeOld, " ", "")}
	logs := map[string]string{"alice": alice.log.String(), "bob": bob.log.String(), "phone": phoneLog + phone.log.String(),
		"link (stderr)": link.err.String(), "link accept (stderr)": acc.err.String()}
	for name, lg := range logs {
		for _, n := range needles {
			if strings.Contains(strings.ToLower(lg), strings.ToLower(n)) {
				t.Errorf("the %s log holds a secret of the link (%q)", name, n)
			}
		}
	}
}

func boolIdx(b bool) int {
	if b {
		return 1
	}
	return 0
}

// failsUser is profile.fails for a refusal of what the user gave: the
// message says what is wrong, never "internal error".
func failsUser(t *testing.T, p *profile, want string, args ...string) {
	t.Helper()
	out, errOut, code := p.run(args...)
	if code != 1 || !strings.Contains(errOut, want) || strings.Contains(errOut, "internal error") {
		t.Fatalf("%s: samizdat %s: exit %d, stderr %q; want exit 1 and %q, not an internal error (stdout %q)",
			p.name, strings.Join(args, " "), code, errOut, want, out)
	}
}
