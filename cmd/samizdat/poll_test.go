package main

// Waiting cheaply. Every `samizdat` command the tests run is a process
// (about 0.15 s of CPU to start when race-built, 0.03 s built without
// -race; see clientBinary), on two cores shared with the daemons under
// test. A wait that asked the CLI every 100 ms spent most of its CPU
// starting processes that answered "not yet". The waits below ask the
// running node's API from this process (a local HTTP call) while the
// answer is "not yet", and ask the CLI, as before, once the API says the
// condition holds: only the CLI's --json answer ends a wait, so each still
// checks the documented output.

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// client is a client of the node this test runs on p (nil when none runs
// or it does not answer), kept for the node's run.
func (p *profile) client() *apiclient.Client {
	if p.up == nil {
		return nil
	}
	if p.cl == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := apiclient.Load(ctx, filepath.Join(p.dir, "api.json"))
		if err != nil {
			return nil
		}
		p.cl = c
	}
	return p.cl
}

// viaAPI calls the running node's API and decodes its answer into out as
// the CLI's --json output would be decoded; false when there is no answer.
func (p *profile) viaAPI(out any, call func(context.Context, *apiclient.Client) (any, error)) bool {
	c := p.client()
	if c == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := call(ctx, c)
	if err != nil {
		return false
	}
	b, err := json.Marshal(v)
	return err == nil && json.Unmarshal(b, out) == nil
}

// quickMessages is p.messages through the API (ok false: no answer).
func (p *profile) quickMessages(contact string) (ms []message, ok bool) {
	var conv struct {
		Messages []message `json:"messages"`
	}
	ok = p.viaAPI(&conv, func(ctx context.Context, c *apiclient.Client) (any, error) {
		return c.Messages(ctx, contact, 0)
	})
	return conv.Messages, ok
}

// quickFiles is p.files through the API (ok false: no answer).
func (p *profile) quickFiles() (ts []transfer, ok bool) {
	ok = p.viaAPI(&ts, func(ctx context.Context, c *apiclient.Client) (any, error) { return c.Files(ctx) })
	return ts, ok
}

// notYet reports whether the API answered and its answer fails cond: a
// poll that can skip the CLI.
func notYet[T any](v T, ok bool, cond func(T) bool) bool { return ok && !cond(v) }

// eventuallyMessages waits until cond holds for p's messages with contact
// as `samizdat messages --json` shows them.
func (p *profile) eventuallyMessages(t *testing.T, what, contact string, cond func([]message) bool) {
	t.Helper()
	eventuallyCLI(t, what, func() bool {
		if ms, ok := p.quickMessages(contact); notYet(ms, ok, cond) {
			return false
		}
		return cond(p.messages(contact))
	})
}

// eventuallyTransfer waits until cond holds for p's transfer of the file
// with message (or post) id as `samizdat files --json` shows it.
func (p *profile) eventuallyTransfer(t *testing.T, what, id string, cond func(transfer) bool) {
	t.Helper()
	byID := func(ts []transfer) transfer {
		for _, tr := range ts {
			if tr.MessageID == id {
				return tr
			}
		}
		return transfer{}
	}
	eventuallyCLI(t, what, func() bool {
		if ts, ok := p.quickFiles(); notYet(byID(ts), ok, cond) {
			return false
		}
		return cond(p.transfer(id))
	})
}

// eventuallyQuick is eventuallyCLI with quick asked first at each poll:
// when it answers (ok) that the condition does not hold yet, cond (which
// asks the CLI) is not run. quick must never be stricter than cond.
func eventuallyQuick(t *testing.T, what string, quick func() (holds, ok bool), cond func() bool) {
	t.Helper()
	eventuallyCLI(t, what, func() bool {
		if holds, ok := quick(); ok && !holds {
			return false
		}
		return cond()
	})
}

// quickGroupMembers reports whether p's node knows exactly one group, of n
// members (as `group list --json` would show it).
func (p *profile) quickGroupMembers(n int) (holds, ok bool) {
	var gs []struct {
		Members []any `json:"members"`
	}
	ok = p.viaAPI(&gs, func(ctx context.Context, c *apiclient.Client) (any, error) { return c.Groups(ctx) })
	return len(gs) == 1 && len(gs[0].Members) == n, ok
}

// quickGroupText reports whether p's node has a message in group gid whose
// text contains text.
func (p *profile) quickGroupText(gid, text string) (holds, ok bool) {
	var conv struct {
		Messages []struct {
			Text string `json:"text"`
		} `json:"messages"`
	}
	ok = p.viaAPI(&conv, func(ctx context.Context, c *apiclient.Client) (any, error) { return c.GroupMessages(ctx, gid, 0) })
	for _, m := range conv.Messages {
		if strings.Contains(m.Text, text) {
			return true, ok
		}
	}
	return false, ok
}

// quickChannelPeers reports whether p's node has one channel with n peers
// on its topic (as `channel list --json` would show it).
func (p *profile) quickChannelPeers(n int) (holds, ok bool) {
	var cs []struct {
		Peers int `json:"peers"`
	}
	ok = p.viaAPI(&cs, func(ctx context.Context, c *apiclient.Client) (any, error) { return c.Channels(ctx) })
	return len(cs) == 1 && cs[0].Peers == n, ok
}

// quickContactNamed is p.contactNamed through the API.
func (p *profile) quickContactNamed(acct string) (name string, ok bool) {
	var cs []cliContact
	ok = p.viaAPI(&cs, func(ctx context.Context, c *apiclient.Client) (any, error) { return c.Contacts(ctx) })
	for _, c := range cs {
		if c.AccountID == acct {
			return c.Name, ok
		}
	}
	return "", ok
}
