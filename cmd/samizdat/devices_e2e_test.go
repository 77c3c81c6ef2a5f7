package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

type deviceList struct {
	Version uint64 `json:"version"`
	Devices []struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		This    bool   `json:"this"`
		Revoked bool   `json:"revoked"`
	} `json:"devices"`
}

func (p *profile) devices() deviceList {
	p.t.Helper()
	var l deviceList
	if err := json.Unmarshal([]byte(p.must("devices", "--json")), &l); err != nil {
		p.t.Fatal(err)
	}
	return l
}

// linkNew runs `samizdat link` on a new profile p and has existing accept
// the code it shows; it returns the new device's id and the codes both
// sides showed.
func linkNew(t *testing.T, p, existing *profile, deviceName string) (id, codeNew, codeOld string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--profile", p.dir, "link", "--yes", "--no-passphrase", "--device-name", deviceName)
	cmd.Env = append(append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE="), p.env...)
	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var link string
	for link == "" {
		for _, l := range strings.Split(out.String(), "\n") {
			if s, ok := strings.CutPrefix(l, "link: "); ok {
				link = s
			}
		}
		select {
		case err := <-done:
			t.Fatalf("samizdat link exited before showing a code: %v\n%s\n%s", err, out, errb)
		case <-time.After(20 * time.Millisecond): // polling the output
		}
	}
	var dev struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	o, e, code := existing.run("link", "accept", link, "--yes", "--json")
	if code != 0 {
		t.Fatalf("link accept: exit %d\n%s\n%s", code, o, e)
	}
	if err := json.Unmarshal([]byte(o), &dev); err != nil || dev.Name != deviceName {
		t.Fatalf("link accept printed %q (%v)", o, err)
	}
	codeOld = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(e), "code:"))
	if err := <-done; err != nil {
		t.Fatalf("samizdat link: %v\n%s\n%s", err, out, errb)
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if s, ok := strings.CutPrefix(l, "code: "); ok {
			codeNew = s
		}
	}
	// The code is used: accepting it again fails.
	existing.fails("", "link", "accept", link, "--yes")
	return dev.ID, codeNew, codeOld
}

// TestCLILinkedDevice: alice links a second device (the codes match), the
// device list has a new version, the new device starts as alice with her
// contacts; bob's messages reach both of her devices (fan-out), bob sees
// one alice whichever device writes, and what one device sends shows on
// the other as sent; a group message reaches both, and the second device
// posts in the group with a sender key of its own (bob and the laptop see
// it from alice); after alice revokes the second device bob refuses what
// it sends, 1:1 or in the group, neither bob nor alice's laptop sends it
// anything more, and it cannot read their group messages sent after.
func TestCLILinkedDevice(t *testing.T) {
	t.Parallel()
	alice, bob, phone := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "phone")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.start()
	bob.start()
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")))
	id := strings.TrimSpace(alice.must("send", "bob", "hello from the laptop"))
	alice.waitState("bob", id, "delivered")

	// A group of alice and bob, from before the linking; alice has bob's
	// sender key.
	ctx := context.Background()
	g, err := alice.api().CreateGroup(ctx, "crew")
	if err != nil {
		t.Fatal(err)
	}
	alice.must("group", "invite", g.ID, "bob")
	waitGroupText(t, bob, g.ID, "") // bob sees the group
	if _, err := bob.api().GroupSend(ctx, g.ID, "before the phone"); err != nil {
		t.Fatal(err)
	}
	waitGroupText(t, alice, g.ID, "before the phone")

	if l := alice.devices(); l.Version != 0 || len(l.Devices) != 1 || !l.Devices[0].This {
		t.Fatalf("devices before linking: %+v", l)
	}
	phoneID, codeNew, codeOld := linkNew(t, phone, alice, "phone")
	if codeNew == "" || codeNew != codeOld {
		t.Fatalf("codes: new device %q, existing %q", codeNew, codeOld)
	}
	if l := alice.devices(); l.Version != 1 || len(l.Devices) != 2 || l.Devices[1].ID != phoneID {
		t.Fatalf("devices after linking: %+v", l)
	}
	phone.fails("already exists", "link", "--yes", "--no-passphrase")

	phone.start()
	if mustAccount(t, phone) != mustAccount(t, alice) {
		t.Fatal("the linked device is another account")
	}
	if l := phone.devices(); l.Version != 1 || len(l.Devices) != 2 {
		t.Fatalf("phone's devices: %+v", l)
	}
	// Alice's next message from the laptop carries her new card (listing
	// the phone) to bob, and shows on the phone as sent (a sent copy).
	id = strings.TrimSpace(alice.must("send", "bob", "I linked a phone"))
	alice.waitState("bob", id, "delivered")
	waitMessage(t, phone, "bob", "I linked a phone", true)
	// Bob sends to alice: both of her devices show it.
	id = strings.TrimSpace(bob.must("send", "alice", "hi both"))
	bob.waitState("alice", id, "delivered")
	waitMessage(t, alice, "bob", "hi both", false)
	waitMessage(t, phone, "bob", "hi both", false)

	// The phone replies (to a contact it got at linking): bob sees one
	// alice, and the laptop shows the reply as sent.
	id = strings.TrimSpace(phone.must("send", "bob", "hello from the phone"))
	phone.waitState("bob", id, "delivered")
	var contacts []struct{ Name string }
	json.Unmarshal([]byte(bob.must("contacts", "--json")), &contacts)
	if len(contacts) != 1 {
		t.Fatalf("bob's contacts: %+v", contacts)
	}
	if got := bob.messages("alice"); len(got) != 4 || got[3].Body != "hello from the phone" || got[3].Outgoing {
		t.Fatalf("bob's messages: %+v", got)
	}
	waitMessage(t, alice, "bob", "hello from the phone", true)
	id = strings.TrimSpace(bob.must("send", "alice", "hi phone"))
	bob.waitState("alice", id, "delivered")
	waitMessage(t, phone, "bob", "hi phone", false)
	waitMessage(t, alice, "bob", "hi phone", false)
	for _, p := range []*profile{alice, phone} {
		n := 0
		for _, m := range p.messages("bob") {
			if m.Body == "hi both" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s shows bob's message %d times", p.name, n)
		}
	}

	// A group message reaches both of alice's devices; the phone posts
	// with a sender key of its own: bob and the laptop see it from alice.
	if _, err := bob.api().GroupSend(ctx, g.ID, "to both devices"); err != nil {
		t.Fatal(err)
	}
	waitGroupText(t, alice, g.ID, "to both devices")
	waitGroupText(t, phone, g.ID, "to both devices")
	phone.must("group", "send", g.ID, "from the phone")
	for _, p := range []*profile{bob, alice} {
		waitGroupText(t, p, g.ID, "from the phone")
		conv, err := p.api().GroupMessages(ctx, g.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range conv.Messages {
			if m.Text == "from the phone" && (m.Sender != mustAccount(t, alice) || m.Outgoing != (p == alice)) {
				t.Fatalf("%s shows the phone's post as %+v, want alice's", p.name, m)
			}
		}
	}
	if _, err := alice.api().GroupSend(ctx, g.ID, "from the laptop"); err != nil {
		t.Fatal(err)
	}
	waitGroupText(t, phone, g.ID, "from the laptop")

	// Alice revokes the phone from the laptop while the phone is off; her
	// next message carries the new card to bob.
	phone.stop()
	alice.must("devices", "revoke", phoneID[len(phoneID)-8:])
	if l := alice.devices(); l.Version != 2 || !l.Devices[1].Revoked {
		t.Fatalf("devices after revoking: %+v", l)
	}
	alice.fails("cannot revoke itself", "devices", "revoke", alice.devices().Devices[0].ID)
	laptopID := alice.devices().Devices[0].ID
	id = strings.TrimSpace(alice.must("send", "bob", "the phone is gone"))
	alice.waitState("bob", id, "delivered")
	// The phone comes back while the laptop, which would tell it, is
	// away, and writes while bob is away too (so that both are queued
	// before anything can tell it): what it signs is refused by bob, 1:1
	// and in the group.
	alice.stop()
	bob.stop()
	phone.start()
	id = strings.TrimSpace(phone.must("send", "bob", "written on the revoked phone"))
	phone.must("group", "send", g.ID, "posted on the revoked phone")
	bob.start()
	phone.waitState("bob", id, "failed")
	waitLogCount(t, bob, "msg=revokedDeviceRefused", 2)
	for _, m := range bob.messages("alice") {
		if strings.Contains(m.Body, "revoked phone") {
			t.Fatal("bob stored a message from the revoked device")
		}
	}
	// The laptop comes back and tells the phone (the account-signed list
	// that revokes it): it says so and sends nothing more, 1:1 or in the
	// group.
	alice.start()
	waitLogCount(t, phone, "msg=deviceRevoked", 1)
	var st struct {
		Revoked *struct {
			By string `json:"by"`
		} `json:"revoked"`
	}
	if err := json.Unmarshal([]byte(phone.must("status", "--json")), &st); err != nil || st.Revoked == nil || st.Revoked.By != laptopID {
		t.Fatalf("the revoked phone's status: %+v, %v", st.Revoked, err)
	}
	phone.fails("removed from your account", "send", "bob", "written on the revoked phone")
	phone.fails("removed from your account", "group", "send", g.ID, "posted on the revoked phone")
	// Bob and the laptop each make a new sender key, which the phone does
	// not get, before their next group message (marked due when the
	// phone was dropped, before their restart; made now).
	for _, p := range []*profile{bob, alice} {
		if _, err := p.api().GroupSend(ctx, g.ID, "group after the revocation, from "+p.name); err != nil {
			t.Fatal(err)
		}
		waitLogCount(t, p, "msg=groupRekeyed", 1)
	}
	waitGroupText(t, alice, g.ID, "group after the revocation, from bob")
	waitGroupText(t, bob, g.ID, "group after the revocation, from alice")
	// Bob's next message goes to the laptop, never to the phone; nor does
	// the laptop's sent copy of what it writes now.
	id = strings.TrimSpace(bob.must("send", "alice", "after the revocation"))
	bob.waitState("alice", id, "delivered")
	if got := alice.messages("bob"); got[len(got)-1].Body != "after the revocation" {
		t.Fatalf("alice's messages: %+v", got)
	}
	id = strings.TrimSpace(alice.must("send", "bob", "the laptop after the revocation"))
	alice.waitState("bob", id, "delivered")
	// A marker the laptop sends the phone would have arrived by now: the
	// laptop's queue for it is empty (dropped, not waiting).
	for _, m := range phone.messages("bob") {
		if m.Body == "after the revocation" || m.Body == "the laptop after the revocation" || m.Body == "the phone is gone" {
			t.Fatalf("the revoked phone got %q, sent after its revocation", m.Body)
		}
	}
	for _, p := range []*profile{bob, alice} {
		conv, err := p.api().GroupMessages(ctx, g.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range conv.Messages {
			if m.Text == "posted on the revoked phone" {
				t.Fatalf("%s shows the revoked phone's group post", p.name)
			}
		}
	}
	conv, err := phone.api().GroupMessages(ctx, g.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range conv.Messages {
		if strings.HasPrefix(m.Text, "group after the revocation") {
			t.Fatalf("the revoked phone reads %q, sent after its revocation", m.Text)
		}
	}
}

// waitMessage waits until p shows a message with body in its chat with
// contact, sent by p's account (outgoing) or received.
func waitMessage(t *testing.T, p *profile, contact, body string, outgoing bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	has := func(ms []message) bool {
		for _, m := range ms {
			if m.Body == body && m.Outgoing == outgoing {
				return true
			}
		}
		return false
	}
	for {
		// The node's API first: the CLI only once it says so (poll_test.go).
		if ms, ok := p.quickMessages(contact); !notYet(ms, ok, has) && has(p.messages(contact)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no message %q (outgoing %v) with %s: %+v\n%s", p.name, body, outgoing, contact, p.messages(contact), p.log)
		}
		time.Sleep(50 * time.Millisecond) // polling the node
	}
}

// waitGroupText waits until p has a group message with text in group gid
// (text "": until p knows the group).
func waitGroupText(t *testing.T, p *profile, gid, text string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conv, err := p.api().GroupMessages(context.Background(), gid, 0)
		if err == nil {
			if text == "" {
				return
			}
			for _, m := range conv.Messages {
				if m.Text == text {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no group message %q: %+v %v\n%s", p.name, text, conv, err, p.log)
		}
		time.Sleep(50 * time.Millisecond) // polling the node
	}
}
