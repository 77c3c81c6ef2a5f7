package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	name   string
	dir    string
	node   *Node
	listen []string // the ports of its first run, kept across restarts
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
	// A volunteer relay keeps carol's mail while she is offline: it sees
	// sealed boxes under a mailbox id, nothing else.
	relay, err := StartRelay(ctx, RelayOptions{
		Dir: filepath.Join(base, "relay"), Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		LoopbackOnly: true, Logger: log.With("node", "relay"),
	})
	if err != nil {
		return fmt.Errorf("start the relay: %w", err)
	}
	defer relay.Close()
	hosts, err := ParseMailboxHosts(relay.Addrs())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  a volunteer relay (node %s…) keeps mail for carol while she is offline\n", relay.PeerID()[:16])
	people := map[string]*demoNode{}
	start := func(name string) error {
		p := people[name]
		mc := messenger.Config{RetryMin: 200 * time.Millisecond, RetryMax: 2 * time.Second}
		if name == "carol" {
			mc.MailboxHosts, mc.FetchInterval = hosts, time.Second
		}
		if p.listen == nil {
			p.listen = []string{"/ip4/127.0.0.1/tcp/0"}
		}
		n, err := Start(ctx, Options{
			Dir: p.dir, Listen: p.listen,
			APIAddr: "-", LoopbackOnly: true, Logger: log.With("node", name),
			Messenger: mc,
		})
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		p.node = n
		// Back on the same port after a restart, as `samizdat up` is:
		// contacts find the node where its card says.
		p.listen = nil
		for _, a := range n.P2P.Addrs() {
			if i := strings.Index(a, "/p2p/"); i > 0 {
				p.listen = append(p.listen, a[:i])
			}
		}
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
	if err := demoPhoto(ctx, w, alice, bob); err != nil {
		return err
	}

	fmt.Fprintln(w, "carol's node goes offline; alice writes to her anyway")
	if err := carol.node.Close(); err != nil {
		return err
	}
	carol.node = nil
	const offline = "Carol, call me when you are back."
	t0 := time.Now()
	m, err := alice.node.Messenger.Send(ctx, "carol", offline)
	if err != nil {
		return err
	}
	if err := waitState(ctx, alice, "carol", m.ID, messenger.StateSent, 30*time.Second, func(state string) {
		fmt.Fprintf(w, "alice → carol: %q  %s in %v: left, sealed, at carol's relay\n", offline, state, time.Since(t0).Round(time.Millisecond))
	}); err != nil {
		return err
	}
	fmt.Fprintln(w, "alice's node goes offline too; carol's node comes back")
	if err := alice.node.Close(); err != nil {
		return err
	}
	alice.node = nil
	t0 = time.Now()
	if err := start("carol"); err != nil {
		return err
	}
	for {
		_, msgs, err := carol.node.Messenger.Messages(ctx, "alice", 0, 0)
		if err != nil {
			return err
		}
		if n := len(msgs); n > 0 && msgs[n-1].Body == offline {
			fmt.Fprintf(w, "carol has alice's message %v after coming back (fetched from the relay; alice is still offline)\n", time.Since(t0).Round(time.Millisecond))
			break
		}
		if time.Since(t0) > 30*time.Second {
			return errors.New("carol did not get alice's message from the relay")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Fprintln(w, "alice's node comes back")
	t0 = time.Now()
	if err := start("alice"); err != nil {
		return err
	}
	if err := waitState(ctx, alice, "carol", m.ID, messenger.StateDelivered, 30*time.Second, func(state string) {
		fmt.Fprintf(w, "alice → carol: %s %v after alice came back (carol's encrypted ack)\n", state, time.Since(t0).Round(time.Millisecond))
	}); err != nil {
		return err
	}

	if err := demoGroupAndChannel(ctx, w, alice, bob, carol); err != nil {
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
