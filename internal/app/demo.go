package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/store"
)

// DemoOptions configure RunDemo.
type DemoOptions struct {
	Keep    bool   // keep the profiles and say where they are
	BaseDir string // where to create the profiles (default: a temp dir)
	Logger  *slog.Logger
}

// demoNode is one person of the demo.
type demoNode struct {
	name string
	dir  string
	node *Node
}

// RunDemo starts alice, bob and carol as three real nodes on loopback,
// with profiles in a temporary directory, connects them by invite links,
// exchanges messages (one while the recipient is offline) and prints what
// happens and every message's delivery state.
func RunDemo(ctx context.Context, w io.Writer, o DemoOptions) (err error) {
	base := o.BaseDir
	if base == "" {
		if base, err = os.MkdirTemp("", "samizdat-demo-"); err != nil {
			return err
		}
	}
	if !o.Keep {
		defer os.RemoveAll(base)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fmt.Fprintln(w, "samizdat demo: three people, three real nodes on this machine (loopback only, no server anywhere)")
	people := map[string]*demoNode{}
	start := func(name string) error {
		p := people[name]
		n, err := Start(ctx, Options{
			Dir: p.dir, Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
			APIAddr: "-", LoopbackOnly: true, Logger: log.With("node", name),
			Messenger: messenger.Config{RetryMin: 200 * time.Millisecond, RetryMax: 2 * time.Second},
		})
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		p.node = n
		return nil
	}
	defer func() {
		for _, p := range people {
			if p.node != nil {
				p.node.Close()
			}
		}
	}()
	for _, name := range []string{"alice", "bob", "carol"} {
		dir := filepath.Join(base, name)
		acct, err := Init(ctx, dir, name, KeySource{NoPassphrase: true})
		if err != nil {
			return fmt.Errorf("init %s: %w", name, err)
		}
		people[name] = &demoNode{name: name, dir: dir}
		if err := start(name); err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-6s account %s…  node %s…\n", name, acct[:12], people[name].node.P2P.PeerID()[:16])
	}
	alice, bob, carol := people["alice"], people["bob"], people["carol"]

	invite := func(from, to *demoNode) error {
		link, err := from.node.Messenger.Invite(ctx)
		if err != nil {
			return err
		}
		c, err := to.node.Messenger.AddContact(ctx, link, "")
		if err != nil {
			return fmt.Errorf("%s adds %s: %w", to.name, from.name, err)
		}
		fmt.Fprintf(w, "%s adds %s from %s invite link (%d characters); safety number %s\n", to.name, c.Name, from.name+"'s", len(link), c.SafetyNumber)
		return nil
	}
	if err := invite(alice, bob); err != nil {
		return err
	}
	if err := invite(alice, carol); err != nil {
		return err
	}
	if err := invite(carol, bob); err != nil {
		return err
	}

	send := func(from, to *demoNode, text string) (string, error) {
		t0 := time.Now()
		m, err := from.node.Messenger.Send(ctx, to.name, text)
		if err != nil {
			return "", fmt.Errorf("%s sends to %s: %w", from.name, to.name, err)
		}
		return m.ID, waitState(ctx, from, to.name, m.ID, messenger.StateDelivered, 30*time.Second, func(state string) {
			fmt.Fprintf(w, "%s → %s: %q  %s in %v\n", from.name, to.name, text, state, time.Since(t0).Round(time.Millisecond))
		})
	}
	// Bob writes first: alice learns who he is from his first message.
	steps := []struct {
		from, to *demoNode
		text     string
	}{
		{bob, alice, "Hi Alice, it's Bob. Did the photos arrive?"},
		{alice, bob, "Yes! All of them. Thank you, Bob."},
		{carol, alice, "Alice, the shop opens at 9 tomorrow."},
		{alice, carol, "Thanks Carol, see you there."},
		{bob, carol, "Carol, can you bring the list?"},
		{carol, bob, "Sure."},
	}
	for _, s := range steps {
		if _, err := send(s.from, s.to, s.text); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "carol's node goes offline; alice writes to her anyway")
	if err := carol.node.Close(); err != nil {
		return err
	}
	carol.node = nil
	m, err := alice.node.Messenger.Send(ctx, "carol", "Carol, call me when you are back.")
	if err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	st, err := messageState(ctx, alice, "carol", m.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "alice → carol: %q  %s (carol is offline)\n", "Carol, call me when you are back.", st)
	fmt.Fprintln(w, "carol's node comes back")
	t0 := time.Now()
	if err := start("carol"); err != nil {
		return err
	}
	if err := waitState(ctx, alice, "carol", m.ID, messenger.StateDelivered, 30*time.Second, func(state string) {
		fmt.Fprintf(w, "alice → carol: %s %v after carol came back\n", state, time.Since(t0).Round(time.Millisecond))
	}); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nEach person's conversations, as stored (encrypted at rest) on their own node:")
	for _, p := range []*demoNode{alice, bob, carol} {
		cs, err := p.node.Messenger.Contacts(ctx)
		if err != nil {
			return err
		}
		for _, c := range cs {
			_, msgs, err := p.node.Messenger.Messages(ctx, c.Name, 0, 0)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "  %s ↔ %s\n", p.name, c.Name)
			for _, m := range msgs {
				dir := "←"
				if m.Outgoing {
					dir = "→"
				}
				fmt.Fprintf(w, "    %s %-44q [%s]\n", dir, m.Body, m.State)
			}
		}
	}
	if o.Keep {
		fmt.Fprintf(w, "\nprofiles kept in %s (e.g. samizdat --profile %s messages bob)\n", base, alice.dir)
	}
	fmt.Fprintln(w, "\ndemo finished: every message delivered, end-to-end encrypted, no server involved")
	return nil
}

func messageState(ctx context.Context, p *demoNode, contact, id string) (string, error) {
	_, msgs, err := p.node.Messenger.Messages(ctx, contact, 0, 0)
	if err != nil {
		return "", err
	}
	for _, m := range msgs {
		if m.ID == id && m.Outgoing {
			return m.State, nil
		}
	}
	return "", store.ErrNotFound
}

// waitState polls until a message reaches state, then calls done.
func waitState(ctx context.Context, p *demoNode, contact, id, state string, limit time.Duration, done func(string)) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := messageState(ctx, p, contact, id)
		if err != nil {
			return err
		}
		if st == state {
			done(st)
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("message from " + p.name + " to " + contact + " still " + st + " after " + limit.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
