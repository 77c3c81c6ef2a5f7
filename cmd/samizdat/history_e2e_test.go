package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// linkWith runs `samizdat link` (with linkArgs) on a new profile p and has
// existing accept its code (with acceptArgs); it returns the new device's
// id.
func linkWith(t *testing.T, p, existing *profile, name string, linkArgs, acceptArgs []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--profile", p.dir, "link", "--yes", "--no-passphrase", "--device-name", name}, linkArgs...)
	cmd := exec.CommandContext(ctx, binary, args...)
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
		ID string `json:"id"`
	}
	o, e, code := existing.run(append([]string{"link", "accept", link, "--yes", "--json"}, acceptArgs...)...)
	if code != 0 {
		t.Fatalf("link accept: exit %d\n%s\n%s", code, o, e)
	}
	if err := json.Unmarshal([]byte(o), &dev); err != nil {
		t.Fatalf("link accept printed %q (%v)", o, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("samizdat link: %v\n%s\n%s", err, out, errb)
	}
	return dev.ID
}

type historyDevices struct {
	Devices []struct {
		ID      string `json:"id"`
		This    bool   `json:"this"`
		History *struct {
			Incoming bool   `json:"incoming"`
			State    string `json:"state"`
			Messages int    `json:"messages"`
			Imported int    `json:"imported"`
			Error    string `json:"error"`
		} `json:"history"`
	} `json:"devices"`
}

// historyWith returns the history transfer p lists with device id.
func historyWith(t *testing.T, p *profile, id string) (state string, incoming bool, messages, imported int) {
	t.Helper()
	var l historyDevices
	if err := json.Unmarshal([]byte(p.must("devices", "--json")), &l); err != nil {
		t.Fatal(err)
	}
	return l.with(id)
}

// quickHistoryWith is historyWith through the API (poll_test.go; ok
// false: no answer).
func quickHistoryWith(p *profile, id string) (state string, incoming bool, messages, imported int, ok bool) {
	var l historyDevices
	if !p.viaAPI(&l, func(ctx context.Context, c *apiclient.Client) (any, error) { return c.Devices(ctx) }) {
		return "", false, 0, 0, false
	}
	state, incoming, messages, imported = l.with(id)
	return state, incoming, messages, imported, true
}

func (l historyDevices) with(id string) (state string, incoming bool, messages, imported int) {
	for _, d := range l.Devices {
		if d.ID == id && d.History != nil {
			return d.History.State, d.History.Incoming, d.History.Messages, d.History.Imported
		}
	}
	return "", false, 0, 0
}

// TestCLILinkHistory: alice links a laptop; once it runs, her old
// conversation with bob shows there in order, with who wrote what and
// the states, and `devices --json` on both says the transfer is complete.
// A tablet linked with `link accept --no-history` gets the contacts but
// no messages; so does a watch linked with `link --no-history` (it refuses
// the offer, and alice's side says so).
func TestCLILinkHistory(t *testing.T) {
	t.Parallel()
	alice, bob, laptop, tablet, watch := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "laptop"), newProfile(t, "tablet"), newProfile(t, "watch")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.start()
	bob.start()
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")))
	bodies := []struct {
		from *profile
		to   string
		text string
	}{{alice, "bob", "hello bob"}, {bob, "alice", "hello alice"}, {alice, "bob", "how are you?"}, {bob, "alice", "fine, and you?"}}
	for _, m := range bodies {
		id := strings.TrimSpace(m.from.must("send", m.to, m.text))
		m.from.waitState(m.to, id, "delivered")
	}
	want := alice.messages("bob")
	if len(want) != 4 {
		t.Fatalf("alice's messages: %+v", want)
	}

	laptopID := linkWith(t, laptop, alice, "laptop", nil, nil)
	laptop.start()
	deadline := time.Now().Add(60 * time.Second)
	for ms, ok := laptop.quickMessages("bob"); (ok && len(ms) < 4) || len(laptop.messages("bob")) < 4; ms, ok = laptop.quickMessages("bob") { // the API first (poll_test.go)
		if time.Now().After(deadline) {
			t.Fatalf("the laptop has %+v\nlaptop log:\n%s\nalice log:\n%s", laptop.messages("bob"), laptop.log, alice.log)
		}
		time.Sleep(100 * time.Millisecond) // polling the node
	}
	got := laptop.messages("bob")
	if len(got) != 4 {
		t.Fatalf("the laptop has %d messages: %+v", len(got), got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Body != want[i].Body || got[i].Outgoing != want[i].Outgoing || got[i].State != want[i].State {
			t.Errorf("laptop message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	aliceID := ""
	var l historyDevices
	json.Unmarshal([]byte(alice.must("devices", "--json")), &l)
	for _, d := range l.Devices {
		if d.This {
			aliceID = d.ID
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	complete := func(st string, in bool, n, imp int, ost string) bool {
		return st == "complete" && in && n == 4 && imp == 4 && ost == "complete"
	}
	for {
		// The nodes' API first: the CLI only once they say so.
		qst, qin, qn, qimp, ok := quickHistoryWith(laptop, aliceID)
		qost, _, _, _, ok2 := quickHistoryWith(alice, laptopID)
		if !ok || !ok2 || complete(qst, qin, qn, qimp, qost) {
			st, in, n, imp := historyWith(t, laptop, aliceID)
			ost, _, _, _ := historyWith(t, alice, laptopID)
			if complete(st, in, n, imp, ost) {
				break
			}
			qst, qin, qn, qimp, qost = st, in, n, imp, ost
		}
		if time.Now().After(deadline) {
			t.Fatalf("history: laptop %q %v %d %d, alice %q", qst, qin, qn, qimp, qost)
		}
		time.Sleep(100 * time.Millisecond) // polling the node
	}
	if out := laptop.must("devices"); !strings.Contains(out, "history received: 4 messages") {
		t.Errorf("devices says:\n%s", out)
	}

	// Opted out: contacts, no messages (and no transfer listed).
	tabletID := linkWith(t, tablet, alice, "tablet", nil, []string{"--no-history"})
	tablet.start()
	if c := tablet.must("contacts"); !strings.Contains(c, "bob") {
		t.Fatalf("the tablet's contacts: %s", c)
	}
	if st, _, _, _ := historyWith(t, alice, tabletID); st != "" {
		t.Fatalf("alice offered history to the tablet: %s", st)
	}
	if ms := tablet.messages("bob"); len(ms) != 0 {
		t.Fatalf("the tablet got messages: %+v", ms)
	}

	// Refused on the new device's side.
	watchID := linkWith(t, watch, alice, "watch", []string{"--no-history"}, nil)
	watch.start()
	deadline = time.Now().Add(60 * time.Second)
	for {
		if qst, _, _, _, ok := quickHistoryWith(alice, watchID); !ok || qst == "refused" { // the API first
			if st, _, _, _ := historyWith(t, alice, watchID); st == "refused" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's transfer to the watch: %s\n%s", alice.must("devices", "--json"), alice.log)
		}
		time.Sleep(100 * time.Millisecond) // polling the node
	}
	if ms := watch.messages("bob"); len(ms) != 0 {
		t.Fatalf("the watch got messages: %+v", ms)
	}
}
