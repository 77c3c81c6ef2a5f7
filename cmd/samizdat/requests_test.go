package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/identity"
)

type cliRequest struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	AccountID string    `json:"accountId"`
	Messages  []message `json:"messages"`
}

func (p *profile) requests() []cliRequest {
	p.t.Helper()
	var rs []cliRequest
	if err := json.Unmarshal([]byte(p.must("requests", "--json")), &rs); err != nil {
		p.t.Fatal(err)
	}
	return rs
}

// TestCLIRequests: two real daemons' worth of strangers write to bob from
// his card alone (forwarded: no invite secret). Their messages wait in
// `samizdat requests`, in no contact list or chat; `accept` makes alice a
// contact with her message in the chat; `decline` deletes carol's and her
// next message is refused.
func TestCLIRequests(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "carol")
	for _, p := range []*profile{alice, bob, carol} {
		p.must("init", "--name", p.name, "--no-passphrase")
		p.start()
	}
	inv, err := identity.ParseInvite(strings.TrimSpace(bob.must("invite")))
	if err != nil {
		t.Fatal(err)
	}
	forwarded, err := identity.EncodeInvite(inv.SignedCard, nil) // his card, not his invite
	if err != nil {
		t.Fatal(err)
	}
	alice.must("contacts", "add", forwarded, "--name", "bob")
	carol.must("contacts", "add", forwarded, "--name", "bob")
	a := strings.TrimSpace(alice.must("send", "bob", "hello from a stranger"))
	alice.waitState("bob", a, "delivered")
	c := strings.TrimSpace(carol.must("send", "bob", "buy my stuff"))
	carol.waitState("bob", c, "delivered")

	rs := bob.requests()
	if len(rs) != 2 || rs[0].Name != "alice" || len(rs[0].Messages) != 1 || rs[0].Messages[0].Body != "hello from a stranger" ||
		rs[1].Name != "carol" || rs[1].AccountID != mustAccount(t, carol) {
		t.Fatalf("requests --json: %+v", rs)
	}
	if out := bob.must("contacts", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("a stranger is a contact: %s", out)
	}
	bob.fails("no such contact", "messages", mustAccount(t, alice))
	if out := bob.must("requests"); !strings.Contains(out, "hello from a stranger") || !strings.Contains(out, "samizdat accept ID") {
		t.Fatalf("requests: %q", out)
	}

	var ct struct {
		Name      string `json:"name"`
		AccountID string `json:"accountId"`
	}
	if err := json.Unmarshal([]byte(bob.must("accept", strconv.FormatInt(rs[0].ID, 10), "--json")), &ct); err != nil {
		t.Fatal(err)
	}
	if ct.Name != "alice" || ct.AccountID != mustAccount(t, alice) {
		t.Fatalf("accept --json: %+v", ct)
	}
	if got := bob.messages("alice"); len(got) != 1 || got[0].Body != "hello from a stranger" {
		t.Fatalf("alice's chat after accepting: %+v", got)
	}
	r := strings.TrimSpace(bob.must("send", "alice", "welcome"))
	bob.waitState("alice", r, "delivered")

	var d struct {
		Request string `json:"request"`
		Until   string `json:"until"`
	}
	if err := json.Unmarshal([]byte(bob.must("decline", mustAccount(t, carol), "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Request != mustAccount(t, carol) || d.Until == "" {
		t.Fatalf("decline --json: %+v", d)
	}
	if rs := bob.requests(); len(rs) != 0 {
		t.Fatalf("requests after accept and decline: %+v", rs)
	}
	bob.fails("no such contact request", "accept", strconv.FormatInt(rs[1].ID, 10))
	c2 := strings.TrimSpace(carol.must("send", "bob", "hello?"))
	carol.waitState("bob", c2, "failed")
	if rs := bob.requests(); len(rs) != 0 {
		t.Fatalf("a declined stranger is back: %+v", rs)
	}

	// Offline, the list is read from the profile.
	bob.stop()
	if out := bob.must("requests"); !strings.Contains(out, "no contact requests") {
		t.Fatalf("requests offline: %q", out)
	}
}
