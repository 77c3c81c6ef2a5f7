package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// api returns a client of the profile's running daemon.
func (p *profile) api() *apiclient.Client {
	p.t.Helper()
	c, err := apiclient.Load(context.Background(), filepath.Join(p.dir, "api.json"))
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	return c
}

// maxReplayLogLines bounds how often a daemon may log that a message was
// "already received or too old" in TestCLIGroupBurstStrangers: a duplicate
// is acknowledged again, so the error should not appear at all; a small
// bound leaves room for one replayed copy from the network while still
// catching any retry loop (which logs it every retry, endlessly).
const maxReplayLogLines = 2

// TestCLIGroupBurstStrangers is issue 13's test of sessions that never
// wedge, through the real binary: four daemons; alice invites bob and
// carol, who are her contacts but strangers to each other (the invitation
// makes them contacts, and both start a session to the other at the same
// moment, each sending its sender key); dave is alice's contact outside the
// group. Right after everyone joined, every member posts 20 messages at
// once; every member must have all 60, each exactly once, within 10 s, and
// no daemon may loop on "already received".
func TestCLIGroupBurstStrangers(t *testing.T) {
	names := []string{"alice", "bob", "carol", "dave"}
	ps := map[string]*profile{}
	for _, n := range names {
		ps[n] = newProfile(t, n)
		ps[n].must("init", "--name", n, "--no-passphrase")
	}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { ps[n].start() })
	}
	wg.Wait()
	alice, bob, carol, dave := ps["alice"], ps["bob"], ps["carol"], ps["dave"]
	for _, p := range []*profile{bob, carol, dave} {
		alice.must("contacts", "add", strings.TrimSpace(p.must("invite")), "--name", p.name)
	}
	ctx := context.Background()
	api := map[string]*apiclient.Client{}
	for _, n := range names {
		api[n] = ps[n].api()
	}
	g, err := api["alice"].CreateGroup(ctx, "crew")
	if err != nil {
		t.Fatal(err)
	}
	alice.must("group", "invite", g.ID, "bob")
	alice.must("group", "invite", g.ID, "carol")
	members := []string{"alice", "bob", "carol"}

	// Each member posts its 20 messages, all at once, as soon as it sees
	// the group of three: the invitations, the sessions between the
	// strangers and the sender keys are still in flight.
	const perMember = 20
	var mu sync.Mutex
	var joined time.Time // when the last member saw the group of three
	errs := make(chan error, len(members)*perMember+len(members))
	for _, n := range members {
		wg.Go(func() {
			deadline := time.Now().Add(30 * time.Second)
			for {
				gi, err := api[n].Group(ctx, g.ID)
				if err == nil && len(gi.Members) == 3 && !gi.Gone {
					break
				}
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("%s never saw the group of three: %+v %v", n, gi, err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			joined = time.Now()
			mu.Unlock()
			var posts sync.WaitGroup
			for i := range perMember {
				posts.Go(func() {
					if _, err := api[n].GroupSend(ctx, g.ID, fmt.Sprintf("%s %02d", n, i)); err != nil {
						errs <- fmt.Errorf("%s posts %d: %w", n, i, err)
					}
				})
			}
			posts.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	start := joined
	want := len(members) * perMember
	// counts returns, for each member, how many times it has each text.
	counts := func() map[string]map[string]int {
		out := map[string]map[string]int{}
		for _, n := range members {
			conv, err := api[n].GroupMessages(ctx, g.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			out[n] = map[string]int{}
			for _, m := range conv.Messages {
				out[n][m.Text]++
			}
		}
		return out
	}
	deadline := start.Add(10 * time.Second)
	var last map[string]map[string]int
	progress := map[string]int{}
	for {
		polled := time.Now() // the counts are at least this recent
		last = counts()
		done := true
		for _, n := range members {
			if len(last[n]) != progress[n] {
				progress[n] = len(last[n])
				from := map[string]int{}
				for text := range last[n] {
					from[strings.Fields(text)[0]]++
				}
				t.Logf("%v: %s has %d %v", polled.Sub(start).Round(time.Millisecond), n, progress[n], from)
			}
			if len(last[n]) != want {
				done = false
			}
		}
		if done && !polled.After(deadline) {
			break
		}
		if polled.After(deadline) {
			for _, n := range members {
				from := map[string]int{}
				for text := range last[n] {
					from[strings.Fields(text)[0]]++
				}
				t.Logf("%s has %d of %d distinct messages: %v", n, len(last[n]), want, from)
			}
			dumpLogs(t, ps, names)
			t.Fatalf("not every member has all %d group messages 10 s after everyone joined", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("all %d messages at all %d members %v after everyone joined", want, len(members), time.Since(start).Round(time.Millisecond))
	for _, n := range members {
		for text, k := range last[n] {
			if k != 1 {
				t.Errorf("%s has %q %d times", n, text, k)
			}
		}
	}
	if gs, err := api["dave"].Groups(ctx); err != nil || len(gs) != 0 {
		t.Errorf("dave, outside the group, has groups %+v (%v)", gs, err)
	}
	// Let retries that a wedged session would cause show up in the logs.
	time.Sleep(3 * time.Second) // not a condition: a window in which a loop would log
	for _, n := range names {
		if k := bytes.Count(ps[n].log.Bytes(), []byte("already received")); k > maxReplayLogLines {
			dumpLogs(t, ps, names)
			t.Errorf("%s logged \"already received\" %d times (at most %d)", n, k, maxReplayLogLines)
		}
	}
}

// dumpLogs writes the daemons' log lines about delivery trouble.
func dumpLogs(t *testing.T, ps map[string]*profile, names []string) {
	t.Helper()
	for _, n := range names {
		for _, l := range strings.Split(ps[n].log.String(), "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "roup") || strings.Contains(l, "deliveryDeferred") ||
				strings.Contains(l, "msg=rejected") || strings.Contains(l, "msg=refused") || strings.Contains(l, "sessionReset") || strings.Contains(l, "Ack") || strings.Contains(l, "esponse") {
				t.Logf("%s: %s", n, l)
			}
		}
	}
}
