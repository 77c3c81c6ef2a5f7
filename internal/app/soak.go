package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// The chaos soak (DESIGN §10, `samizdat soak`): real `samizdat up`
// processes on loopback and a volunteer relay keeping their mail; messages
// are sent between random pairs while random nodes are killed with
// SIGKILL and restarted. At the end every node comes back and the soak
// counts, for each message a node accepted, whether it was delivered
// (sender's state) and how many times the recipient stored it: the
// promise is exactly once, none lost.

// SoakOptions configure RunSoak.
type SoakOptions struct {
	Exe       string        // the samizdat binary to run nodes with
	Dir       string        // where profiles go ("" = a temporary directory, removed after)
	Nodes     int           // users (default 3)
	Duration  time.Duration // of the chaos phase (default 60 s)
	KillEvery time.Duration // a node is killed this often (default 5 s; negative: never)
	Settle    time.Duration // how long delivery may take after the chaos (default 2 min)
	Seed      uint64        // 0: from the clock
	Logger    *slog.Logger
}

// SoakReport is what the soak counted.
type SoakReport struct {
	Attempted  int // sends asked of a node
	Accepted   int // sends a node confirmed (queued durably)
	Unanswered int // sends whose answer was lost with a killed node
	Delivered  int // accepted messages the sender sees delivered
	Received   int // accepted messages the recipient has (once or more)
	Duplicated int // accepted messages the recipient has more than once
	Lost       int // accepted messages the recipient does not have
	Kills      int
	Elapsed    time.Duration
}

// OK reports whether the soak kept its promise.
func (r SoakReport) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Delivered == r.Accepted
}

func (r SoakReport) String() string {
	return fmt.Sprintf("attempted %d, accepted %d (unanswered %d), delivered %d, received %d, duplicated %d, lost %d; %d kills; %v",
		r.Attempted, r.Accepted, r.Unanswered, r.Delivered, r.Received, r.Duplicated, r.Lost, r.Kills, r.Elapsed.Round(time.Millisecond))
}

// ErrSoakFailed is returned by RunSoak when a message was lost, duplicated
// or not delivered in time.
var ErrSoakFailed = errors.New("soak: messages lost, duplicated or undelivered")

type soakNode struct {
	name   string
	dir    string
	cmd    *exec.Cmd
	done   chan struct{}
	api    *apiclient.Client
	downAt time.Time
}

type soakMsg struct {
	from, to int
	body     string
	id       string // "" when the answer was lost
}

// RunSoak runs the chaos soak and writes its progress and report to w.
func RunSoak(ctx context.Context, w io.Writer, o SoakOptions) (rep SoakReport, err error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 2 {
		return rep, errors.New("soak: at least 2 nodes")
	}
	if o.Duration == 0 {
		o.Duration = time.Minute
	}
	if o.KillEvery == 0 {
		o.KillEvery = 5 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 2 * time.Minute
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := o.Dir
	if base == "" {
		if base, err = os.MkdirTemp("", "samizdat-soak-"); err != nil {
			return rep, err
		}
		defer os.RemoveAll(base)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5a))
	t0 := time.Now()
	fmt.Fprintf(w, "soak: %d nodes and a relay on loopback, %v of chaos, seed %d\n", o.Nodes, o.Duration, o.Seed)

	relay, err := StartRelay(ctx, RelayOptions{Dir: filepath.Join(base, "relay"), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, Logger: log})
	if err != nil {
		return rep, err
	}
	defer relay.Close()

	nodes := make([]*soakNode, o.Nodes)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.stop(true)
			}
		}
	}()
	args := []string{"--dht=false", "--log-level", "warn"}
	for _, a := range relay.Addrs() {
		args = append(args, "--mailbox-host", a)
	}
	for i := range nodes {
		n := &soakNode{name: fmt.Sprintf("n%d", i), dir: filepath.Join(base, fmt.Sprintf("n%d", i))}
		nodes[i] = n
		if _, err := Init(ctx, n.dir, n.name, KeySource{NoPassphrase: true}); err != nil {
			return rep, err
		}
		if err := n.start(ctx, o.Exe, args); err != nil {
			return rep, err
		}
	}
	// Everyone knows everyone.
	for _, a := range nodes {
		inv, err := a.api.Invite(ctx)
		if err != nil {
			return rep, err
		}
		for _, b := range nodes {
			if a != b {
				if _, err := b.api.AddContact(ctx, inv.Link, ""); err != nil {
					return rep, fmt.Errorf("%s adds %s: %w", b.name, a.name, err)
				}
			}
		}
	}

	var msgs []soakMsg
	chaosEnd := time.Now().Add(o.Duration)
	nextKill := time.Now().Add(o.KillEvery)
	for time.Now().Before(chaosEnd) {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		// Restart nodes that have been down for a while.
		for _, n := range nodes {
			if n.cmd == nil && time.Since(n.downAt) > time.Second+time.Duration(rng.IntN(2000))*time.Millisecond {
				if err := n.start(ctx, o.Exe, args); err != nil {
					return rep, err
				}
			}
		}
		if o.KillEvery > 0 && time.Now().After(nextKill) {
			nextKill = time.Now().Add(o.KillEvery)
			if v := nodes[rng.IntN(len(nodes))]; v.cmd != nil {
				v.stop(true)
				rep.Kills++
				log.Info("soakKill", "node", v.name)
			}
		}
		from, to := rng.IntN(len(nodes)), rng.IntN(len(nodes)-1)
		if to >= from {
			to++
		}
		if s := nodes[from]; s.cmd != nil {
			m := soakMsg{from: from, to: to, body: fmt.Sprintf("soak %d from %s to %s", len(msgs), s.name, nodes[to].name)}
			rep.Attempted++
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			got, err := s.api.Send(sctx, nodes[to].name, m.body)
			cancel()
			if err == nil {
				m.id = got.ID
			}
			msgs = append(msgs, m)
		}
		time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)
	}
	fmt.Fprintf(w, "chaos over after %d sends and %d kills; every node comes back\n", rep.Attempted, rep.Kills)
	for _, n := range nodes {
		if n.cmd == nil {
			if err := n.start(ctx, o.Exe, args); err != nil {
				return rep, err
			}
		}
	}

	// Settle: wait until every message a node holds as sent is delivered.
	deadline := time.Now().Add(o.Settle)
	for {
		rep = tally(ctx, nodes, msgs, rep)
		if rep.OK() || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	rep.Elapsed = time.Since(t0)
	fmt.Fprintf(w, "soak: %s\n", rep)
	if !rep.OK() {
		return rep, ErrSoakFailed
	}
	return rep, nil
}

// tally counts, from the nodes' own stores, what became of each message.
func tally(ctx context.Context, nodes []*soakNode, msgs []soakMsg, rep SoakReport) SoakReport {
	type conv struct{ from, to int }
	convs := map[conv][]apiclient.Message{}
	get := func(at, with int) []apiclient.Message {
		k := conv{at, with}
		if ms, ok := convs[k]; ok {
			return ms
		}
		c, err := nodes[at].api.Messages(ctx, nodes[with].name, 0)
		if err != nil {
			return nil
		}
		convs[k] = c.Messages
		return c.Messages
	}
	r := SoakReport{Attempted: rep.Attempted, Kills: rep.Kills}
	for _, m := range msgs {
		// Sent: the sender has it (an unanswered send may have been
		// queued all the same, or not at all).
		var sent *apiclient.Message
		for _, x := range get(m.from, m.to) {
			if x.Outgoing && x.Body == m.body {
				sent = &x
				break
			}
		}
		if m.id == "" {
			r.Unanswered++
		}
		if sent == nil {
			continue // never queued (its node died first)
		}
		r.Accepted++
		if sent.State == "delivered" || sent.State == "read" {
			r.Delivered++
		}
		n := 0
		for _, x := range get(m.to, m.from) {
			if !x.Outgoing && x.Body == m.body {
				n++
			}
		}
		switch {
		case n == 0:
			r.Lost++
		case n > 1:
			r.Duplicated++
			r.Received++
		default:
			r.Received++
		}
	}
	return r
}

func (n *soakNode) start(ctx context.Context, exe string, args []string) error {
	api := filepath.Join(n.dir, APIFile)
	_ = os.Remove(api)
	cmd := exec.Command(exe, append([]string{"--profile", n.dir, "up"}, args...)...)
	cmd.Env = append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE=")
	var errb strings.Builder
	cmd.Stderr = &limitedWriter{w: &errb, left: 64 << 10}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := apiclient.Load(ctx, api); err == nil {
			n.cmd, n.done, n.api = cmd, done, c
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("soak: %s exited at start: %s", n.name, errb.String())
		case <-ctx.Done():
			cmd.Process.Kill()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return fmt.Errorf("soak: %s did not come up", n.name)
		}
	}
}

// stop kills the node: with SIGKILL (a crash) or SIGINT (a clean stop).
func (n *soakNode) stop(kill bool) {
	if n.cmd == nil {
		return
	}
	sig := syscall.SIGINT
	if kill {
		sig = syscall.SIGKILL
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd, n.api, n.downAt = nil, nil, time.Now()
}

// limitedWriter keeps the first bytes written to it.
type limitedWriter struct {
	w    io.Writer
	left int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	if l.left > 0 {
		k := min(len(b), l.left)
		l.w.Write(b[:k])
		l.left -= k
	}
	return len(b), nil
}
