package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The chaos soak (DESIGN §10, `samizdat soak`): real `samizdat up`
// processes on loopback, with real `samizdat relay` processes as their
// mailbox hosts; messages go between random pairs and into a group of all
// nodes while random processes — nodes and mailbox hosts — are killed with
// SIGKILL and restarted. At the end every process comes back and the soak
// checks, from each node's own store, every message whose send returned an
// id: shown exactly once by each receiver, in the order it was sent, and
// (1:1) seen delivered by its sender. A failure names the message.

// SoakOptions configure RunSoak.
type SoakOptions struct {
	Exe       string        // the samizdat binary to run nodes with
	Dir       string        // where profiles go ("" = a temporary directory, removed after)
	Nodes     int           // users (default 3)
	Relays    int           // mailbox hosts, each a `samizdat relay` process (0: 2; negative: none)
	NoGroup   bool          // only 1:1 messages (by default a third of the sends are posts to a group of all nodes)
	Duration  time.Duration // of the chaos phase (default 60 s)
	KillEvery time.Duration // a process is killed this often (default 5 s; negative: never)
	Settle    time.Duration // how long delivery may take after the chaos (default 2 min)
	Seed      uint64        // 0: from the clock
	Logger    *slog.Logger
}

// SoakReport is what the soak counted.
type SoakReport struct {
	Attempted   int // sends asked of a node (1:1 and group)
	Accepted    int // 1:1 sends that returned a message id
	GroupPosts  int // group sends that returned a message id
	Unanswered  int // sends whose answer was lost with a killed node
	Delivered   int // accepted 1:1 messages the sender sees delivered
	Direct      SoakCounts
	Group       SoakCounts // copies: each post × the other members
	Kills       int        // SIGKILLs of nodes
	RelayKills  int        // SIGKILLs of mailbox hosts
	WedgedLines int        // log lines of the nodes saying "already received or too old"
	Elapsed     time.Duration
	Problems    []string // the failures, each naming a message
}

// SoakCounts is what receivers showed of the confirmed messages.
type SoakCounts struct {
	Copies     int // what receivers must show
	Received   int // copies shown at least once
	Lost       int // copies not shown
	Duplicated int // messages shown more than once
	OutOfOrder int // copies shown before one their sender sent earlier
}

func (c SoakCounts) bad() bool { return c.Lost > 0 || c.Duplicated > 0 || c.OutOfOrder > 0 }

func (c SoakCounts) String() string {
	return fmt.Sprintf("%d copies: received %d, lost %d, duplicated %d, out of order %d", c.Copies, c.Received, c.Lost, c.Duplicated, c.OutOfOrder)
}

// OK reports whether the soak kept its promise: something was sent, and
// every message is delivered, exactly once, in order.
func (r SoakReport) OK() bool {
	return r.Accepted+r.GroupPosts > 0 && !r.Direct.bad() && !r.Group.bad() && r.Delivered == r.Accepted && len(r.Problems) == 0
}

func (r SoakReport) String() string {
	return fmt.Sprintf("attempted %d, unanswered %d; 1:1: accepted %d, delivered %d, %s; group: accepted %d posts, %s; %d node kills + %d mailbox-host kills; %d \"already received or too old\" log lines; %v",
		r.Attempted, r.Unanswered, r.Accepted, r.Delivered, r.Direct, r.GroupPosts, r.Group, r.Kills, r.RelayKills, r.WedgedLines, r.Elapsed.Round(time.Millisecond))
}

// ErrSoakFailed is returned by RunSoak when a message was lost, duplicated,
// out of order or not delivered in time, or when nothing was accepted.
var ErrSoakFailed = errors.New("soak: messages lost, duplicated, out of order or undelivered")

// soakMsg is one send of the chaos phase.
type soakMsg struct {
	from, to int    // to < 0: a group post
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
	if o.Relays == 0 {
		o.Relays = 2
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
	base, keepLogs := o.Dir, o.Dir != ""
	if base == "" {
		if base, err = os.MkdirTemp("", "samizdat-soak-"); err != nil {
			return rep, err
		}
		defer os.RemoveAll(base)
	} else if err := os.MkdirAll(base, 0o700); err != nil {
		return rep, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5a))
	t0 := time.Now()
	relays := max(o.Relays, 0)
	fmt.Fprintf(w, "soak: %d nodes and %d mailbox hosts on loopback, group %v, %v of chaos, seed %d\n", o.Nodes, relays, !o.NoGroup, o.Duration, o.Seed)

	var procs []*soakProc
	defer func() {
		for _, p := range procs {
			p.stop(false)
			if p.logFile != nil {
				p.logFile.Close()
			}
		}
	}()
	// With --dir, each process's logs of all its runs go to DIR/NAME.log.
	openLog := func(p *soakProc) error {
		if !keepLogs {
			return nil
		}
		f, err := os.OpenFile(filepath.Join(base, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		p.logFile = f
		return err
	}
	// Mailbox hosts first: the nodes name them. A host restarted without
	// --listen reuses its ports (relay.listen), so the nodes' addresses stay
	// good.
	var hosts []string
	for i := range relays {
		p := &soakProc{name: fmt.Sprintf("host%d", i), dir: filepath.Join(base, fmt.Sprintf("host%d", i)), relay: true,
			args: []string{"relay", "--dht=false", "--log-level", "warn"}}
		procs = append(procs, p)
		if err := openLog(p); err != nil {
			return rep, err
		}
		if err := p.startWait(ctx, o.Exe); err != nil {
			return rep, err
		}
		hosts = append(hosts, p.addrs...)
	}
	// Nodes log at info: the soak counts "already received or too old" lines.
	upArgs := []string{"up", "--dht=false", "--log-level", "info"}
	for _, a := range hosts {
		upArgs = append(upArgs, "--mailbox-host", a)
	}
	nodes := make([]*soakProc, o.Nodes)
	for i := range nodes {
		n := &soakProc{name: fmt.Sprintf("n%d", i), dir: filepath.Join(base, fmt.Sprintf("n%d", i)), args: upArgs}
		nodes[i] = n
		procs = append(procs, n)
		if err := openLog(n); err != nil {
			return rep, err
		}
		if _, err := Init(ctx, n.dir, n.name, KeySource{NoPassphrase: true}); err != nil {
			return rep, err
		}
		if err := n.startWait(ctx, o.Exe); err != nil {
			return rep, err
		}
	}
	accts, err := soakIntroduce(ctx, nodes)
	if err != nil {
		return rep, err
	}
	group := ""
	if !o.NoGroup {
		if group, err = soakGroup(ctx, nodes); err != nil {
			return rep, err
		}
		fmt.Fprintf(w, "group %s: all %d nodes are members\n", group[:8], len(nodes))
	}

	var msgs []soakMsg
	// The killer runs on its own clock, so that a kill lands whenever it is
	// due: in the middle of a send or a post, of a deposit at a host, of a
	// start. mu guards the processes' state between it and this loop.
	var mu sync.Mutex
	stopKiller, killerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(killerDone)
		if o.KillEvery <= 0 {
			return
		}
		krng := rand.New(rand.NewPCG(o.Seed, 0x6b))
		tick := time.NewTicker(o.KillEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopKiller:
				return
			case <-tick.C:
			}
			mu.Lock()
			var running []*soakProc
			for _, p := range procs {
				if p.cmd != nil && !p.killed {
					running = append(running, p)
				}
			}
			if len(running) > 0 {
				v := running[krng.IntN(len(running))]
				v.kill()
				if v.relay {
					rep.RelayKills++
				} else {
					rep.Kills++
				}
				log.Info("soakKill", "proc", v.name)
			}
			mu.Unlock()
		}
	}()
	chaosEnd := time.Now().Add(o.Duration)
	for time.Now().Before(chaosEnd) {
		if err := ctx.Err(); err != nil {
			close(stopKiller)
			<-killerDone
			return rep, err
		}
		mu.Lock()
		var tendErr error
		for _, p := range procs {
			if tendErr = p.tend(ctx, o.Exe, rng); tendErr != nil {
				break
			}
		}
		from := rng.IntN(len(nodes))
		s := nodes[from]
		api := s.api
		mu.Unlock()
		if tendErr != nil {
			close(stopKiller)
			<-killerDone
			return rep, tendErr
		}
		if api == nil {
			time.Sleep(20 * time.Millisecond) // pacing: the sender is down
			continue
		}
		m := soakMsg{from: from, to: -1}
		rep.Attempted++
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if group != "" && rng.IntN(3) == 0 {
			got, err := api.GroupSend(sctx, group, fmt.Sprintf("soak post %d from %s", len(msgs), s.name))
			if err == nil {
				m.id = got.ID
			}
		} else {
			m.to = rng.IntN(len(nodes) - 1)
			if m.to >= from {
				m.to++
			}
			got, err := api.Send(sctx, nodes[m.to].name, fmt.Sprintf("soak %d from %s to %s", len(msgs), s.name, nodes[m.to].name))
			if err == nil {
				m.id = got.ID
			}
		}
		cancel()
		msgs = append(msgs, m)
		time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond) // pacing
	}
	close(stopKiller)
	<-killerDone
	fmt.Fprintf(w, "chaos over after %d sends and %d + %d kills; every process comes back\n", rep.Attempted, rep.Kills, rep.RelayKills)
	for _, p := range procs {
		if p.cmd != nil && p.killed {
			// Killed by the last tick of the chaos and not reaped yet: it
			// still looked ready, was not restarted, and its dead API made
			// everything to and from it count as lost.
			<-p.done
		}
		if p.cmd != nil {
			if err := p.poll(ctx); err != nil {
				return rep, err
			}
		}
		if p.cmd == nil || !p.ready {
			p.stop(false)
			if err := p.startWait(ctx, o.Exe); err != nil {
				return rep, err
			}
		}
	}

	// Settle: wait until every message is where it must be.
	deadline := time.Now().Add(o.Settle)
	for {
		// A process that dies by itself now fails the soak with its
		// stderr (a panic's trace), not as an API that stopped answering.
		for _, p := range procs {
			if p.cmd != nil {
				if err := p.poll(ctx); err != nil {
					return rep, err
				}
			}
		}
		rep = soakTally(ctx, nodes, accts, group, msgs, rep)
		if rep.OK() || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second) // the next look at the stores
	}
	for _, n := range nodes {
		rep.WedgedLines += int(n.wedged.Load())
	}
	rep.Elapsed = time.Since(t0)
	fmt.Fprintf(w, "soak: %s\n", rep)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if !rep.OK() {
		if rep.Accepted+rep.GroupPosts == 0 {
			fmt.Fprintln(w, "  no send was accepted: the soak proved nothing")
		}
		return rep, ErrSoakFailed
	}
	return rep, nil
}

// soakIntroduce makes everyone everyone's contact and returns the nodes'
// account ids.
func soakIntroduce(ctx context.Context, nodes []*soakProc) ([]string, error) {
	accts := make([]string, len(nodes))
	for i, a := range nodes {
		inv, err := a.api.Invite(ctx)
		if err != nil {
			return nil, err
		}
		accts[i] = inv.AccountID
		for _, b := range nodes {
			if a != b {
				if _, err := b.api.AddContact(ctx, inv.Link, ""); err != nil {
					return nil, fmt.Errorf("%s adds %s: %w", b.name, a.name, err)
				}
			}
		}
	}
	return accts, nil
}

// soakGroup has n0 make a group of all nodes and waits until every node
// is a member that sees all the others.
func soakGroup(ctx context.Context, nodes []*soakProc) (string, error) {
	g, err := nodes[0].api.CreateGroup(ctx, "soak")
	if err != nil {
		return "", err
	}
	for _, n := range nodes[1:] {
		if _, err := nodes[0].api.GroupInvite(ctx, g.ID, n.name); err != nil {
			return "", fmt.Errorf("n0 invites %s: %w", n.name, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, n := range nodes {
		for {
			gi, err := n.api.Group(ctx, g.ID)
			if err == nil && len(gi.Members) == len(nodes) {
				break
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("soak: %s did not join the group within a minute: %v", n.name, err)
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return g.ID, nil
}

// soakTally reads what each node shows and checks every stream.
func soakTally(ctx context.Context, nodes []*soakProc, accts []string, group string, msgs []soakMsg, rep SoakReport) SoakReport {
	r := SoakReport{Attempted: rep.Attempted, Kills: rep.Kills, RelayKills: rep.RelayKills}
	who := map[string]int{}
	for i, a := range accts {
		who[a] = i
	}
	type pair struct{ from, to int }
	sent := map[pair][]string{} // 1:1 ids by pair, in send order
	posts := map[int][]string{} // group ids by sender
	for _, m := range msgs {
		switch {
		case m.id == "":
			r.Unanswered++
		case m.to < 0:
			r.GroupPosts++
			posts[m.from] = append(posts[m.from], m.id)
		default:
			r.Accepted++
			sent[pair{m.from, m.to}] = append(sent[pair{m.from, m.to}], m.id)
		}
	}
	var streams, groupStreams []soakStream
	var problems []string
	for s := range nodes {
		for t := range nodes {
			if s == t {
				continue
			}
			// What the receiver shows from the sender, and what the
			// sender holds (its delivered states and unconfirmed sends).
			in, errIn := nodes[t].api.Messages(ctx, nodes[s].name, 0)
			out, errOut := nodes[s].api.Messages(ctx, nodes[t].name, 0)
			if err := errors.Join(errIn, errOut); err != nil {
				problems = append(problems, fmt.Sprintf("%s→%s: read the conversation: %v", nodes[s].name, nodes[t].name, err))
			}
			st := soakStream{Name: nodes[s].name + "→" + nodes[t].name, Sent: sent[pair{s, t}], Unconfirmed: map[string]bool{}}
			for _, m := range in.Messages {
				if !m.Outgoing {
					st.Got = append(st.Got, m.ID)
				}
			}
			state := map[string]string{}
			for _, m := range out.Messages {
				if m.Outgoing {
					state[m.ID] = m.State
					st.Unconfirmed[m.ID] = true
				}
			}
			undelivered := 0
			for _, id := range st.Sent {
				delete(st.Unconfirmed, id)
				if s := state[id]; s == "delivered" || s == "read" {
					r.Delivered++
				} else if undelivered++; undelivered <= maxStreamProblems {
					problems = append(problems, fmt.Sprintf("%s: message %s is %q at its sender, not delivered", st.Name, id, s))
				}
			}
			if undelivered > maxStreamProblems {
				problems = append(problems, fmt.Sprintf("%s: … %d undelivered in all", st.Name, undelivered))
			}
			streams = append(streams, st)
		}
		if group == "" {
			continue
		}
		gc, err := nodes[s].api.GroupMessages(ctx, group, 0)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: read the group: %v", nodes[s].name, err))
		}
		// nodes[s] as the receiver of every other member's posts.
		got := map[int][]string{}
		mine := map[string]bool{}
		for _, m := range gc.Messages {
			if m.Outgoing {
				mine[m.ID] = true
			} else if i, ok := who[m.Sender]; ok {
				got[i] = append(got[i], m.ID)
			}
		}
		for from := range nodes {
			if from != s {
				groupStreams = append(groupStreams, soakStream{Name: "group: " + nodes[from].name + "→" + nodes[s].name, Sent: posts[from], Got: got[from]})
			}
		}
		for _, id := range posts[s] {
			if !mine[id] && len(problems) < maxSoakProblems {
				problems = append(problems, fmt.Sprintf("group: %s's own post %s is gone from its store", nodes[s].name, id))
			}
		}
	}
	vd, vg := checkSoakStreams(streams), checkSoakStreams(groupStreams)
	r.Direct = SoakCounts{vd.Copies, vd.Received, vd.Lost, vd.Duplicated, vd.OutOfOrder}
	r.Group = SoakCounts{vg.Copies, vg.Received, vg.Lost, vg.Duplicated, vg.OutOfOrder}
	r.Problems = append(append(vd.Problems, vg.Problems...), problems...)
	return r
}
