package app

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// The scale runs of issue 18: a channel post to many subscriber nodes, a
// group of many members end to end, and the idle cost of a node and of a
// relay (benchidle.go). Each is a function returning ScaleFigures, listed
// in ScaleBenches so that `samizdat bench --suite` can call them; `samizdat
// bench --channel-subscribers N`, `--group-members N` and `--idle`
// run one at full size.

// ScaleFigure is one measured figure beside its target.
type ScaleFigure struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"` // as the issue states it, e.g. "≤ 500 ms"
	// Met is nil for a figure without a numeric target.
	Met *bool `json:"met,omitempty"`
}

func (f ScaleFigure) String() string {
	s := fmt.Sprintf("%-58s %12.4g %s", f.Name, f.Value, f.Unit)
	if f.Target != "" {
		verdict := "not met"
		if f.Met != nil && *f.Met {
			verdict = "met"
		}
		s += fmt.Sprintf("  (target %s: %s)", f.Target, verdict)
	}
	return s
}

func figure(name string, v float64, unit string) ScaleFigure {
	return ScaleFigure{Name: name, Value: v, Unit: unit}
}

// targetMax is a figure whose target is an upper bound.
func targetMax(name string, v float64, unit string, max float64, target string) ScaleFigure {
	met := v <= max
	return ScaleFigure{Name: name, Value: v, Unit: unit, Target: target, Met: &met}
}

// ScaleBench is one scale run of the suite: Run measures at size (nodes,
// members, or the idle window in seconds) in a fresh directory under dir.
type ScaleBench struct {
	Name  string
	Full  int // the size of the targets
	Smoke int // the size of the CI smoke run
	Run   func(ctx context.Context, dir string, size int, log io.Writer) ([]ScaleFigure, error)
}

// IdleSettle is how long the idle runs of ScaleBenches let the process
// start up before measuring (zero: IdleOptions' default, 30 s). `samizdat
// bench --idle-settle` sets it: the node's back-offs (mailbox checks, a
// quiet topic's history checks) reach their idle pace only after ~10 min.
var IdleSettle time.Duration

// ScaleBenches are the scale runs, for `samizdat bench --suite`.
var ScaleBenches = []ScaleBench{
	{Name: "channel", Full: 1000, Smoke: 20, Run: func(ctx context.Context, dir string, size int, log io.Writer) ([]ScaleFigure, error) {
		r, err := RunChannelScale(ctx, dir, ChannelScaleOptions{Subscribers: size, Log: log})
		return r.Figures(), err
	}},
	{Name: "group", Full: 1000, Smoke: 20, Run: func(ctx context.Context, dir string, size int, log io.Writer) ([]ScaleFigure, error) {
		r, err := RunGroupScale(ctx, dir, GroupScaleOptions{Members: size, Log: log})
		return r.Figures(), err
	}},
	{Name: "idle-node", Full: 300, Smoke: 5, Run: func(ctx context.Context, dir string, size int, log io.Writer) ([]ScaleFigure, error) {
		r, err := RunIdleNode(ctx, dir, IdleOptions{Window: time.Duration(size) * time.Second, Settle: IdleSettle, Log: log})
		return r.Figures(), err
	}},
	{Name: "idle-relay", Full: 300, Smoke: 5, Run: func(ctx context.Context, dir string, size int, log io.Writer) ([]ScaleFigure, error) {
		r, err := RunIdleRelay(ctx, dir, IdleOptions{Window: time.Duration(size) * time.Second, Settle: IdleSettle, Log: log})
		return r.Figures(), err
	}},
}

// ChannelScaleOptions configure RunChannelScale.
type ChannelScaleOptions struct {
	Subscribers int // default 1000
	Posts       int // measured posts (default 20)
	// Dials is how many earlier subscribers each subscriber connects to
	// (default 3); every tenth also connects to the owner.
	Dials  int
	Gossip p2p.GossipParams // zero: p2p.DefaultGossipParams
	// NoAnchor skips the anchor: the same number of bare gossipsub
	// messages (no signature, no validator, no store) over the same hosts
	// after the posts.
	NoAnchor bool
	Log      io.Writer // progress lines; nil: none
}

// postWait is how long a measured post or message is waited for.
const postWait = 30 * time.Second

// idleSample is how long the channel run measures its hosts' idle CPU.
const idleSample = 3 * time.Second

// ChannelScaleResult holds RunChannelScale's figures.
type ChannelScaleResult struct {
	Subscribers int
	Posts       int
	PostBytes   int             // size of one post on the wire (signed, chained)
	To99        []time.Duration // per post: until 99 % of subscribers had it
	To100       []time.Duration // per post: until all had it (0: not all within the wait)
	// Reached is, per post, how many subscribers had it when the wait
	// ended (postWait; To99 is postWait for a post that missed 99 %).
	Reached []int
	// BytesPerSub is the gossipsub bytes (messages and control) each
	// subscriber sent per post, averaged.
	BytesPerSub float64
	Gossip      p2p.GossipParams
	// PostCall is, per post, how long the owner's Post took (sign, chain,
	// store commit, publish): our layer on the owner's side.
	PostCall []time.Duration
	// IdleCores is the CPU the hosts used doing nothing (cores, over
	// idleSample before the posts); CPUPerPost what each post added, all
	// hosts together (the owner's Post included).
	IdleCores  float64
	CPUPerPost time.Duration
	// AnchorTo99 is To99 for bare gossipsub messages of the post's size
	// over the same hosts (no signature, no validator, no store).
	AnchorTo99 []time.Duration
}

// Figures returns the result as suite figures.
func (r ChannelScaleResult) Figures() []ScaleFigure {
	if len(r.To99) == 0 {
		return nil
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	p50, p90 := Percentile(r.To99, .5), Percentile(r.To99, .9)
	name := fmt.Sprintf("channel post to %d subscribers: to 99 %%", r.Subscribers)
	// The post's own size scales the byte figure to the 100-byte
	// post: bytes per subscriber ≈ copies × post size + control.
	missed := 0
	for _, n := range r.Reached {
		if n < ninetyNine(r.Subscribers) {
			missed++
		}
	}
	figs := []ScaleFigure{
		targetMax(name+", p50", ms(p50), "ms", 500, "≤ 500 ms"),
		figure(fmt.Sprintf("channel posts that missed 99 %% within %v", postWait), float64(missed), fmt.Sprintf("of %d", len(r.Reached))),
		figure(name+", p90", ms(p90), "ms"),
		targetMax(fmt.Sprintf("channel post (%d B on the wire): bytes sent per subscriber", r.PostBytes), r.BytesPerSub, "B", 2048, "≤ 2 KB"),
	}
	figs = append(figs,
		figure(fmt.Sprintf("the %d idle hosts' own CPU (heartbeats, timers) before the posts", r.Subscribers), r.IdleCores, "cores"),
		figure("CPU per post, all hosts (receive, verify, forward)", ms(r.CPUPerPost), "ms"))
	if len(r.PostCall) > 0 {
		figs = append(figs, figure("channel post: the owner's Post call (sign, chain, store, publish), p50", ms(Percentile(r.PostCall, .5)), "ms"))
	}
	if len(r.AnchorTo99) > 0 {
		a50 := Percentile(r.AnchorTo99, .5)
		figs = append(figs,
			figure(fmt.Sprintf("anchor: bare gossipsub (%d B, no validator) to 99 %% of the same hosts, p50", r.PostBytes), ms(a50), "ms"),
			figure("anchor: the same, p90", ms(Percentile(r.AnchorTo99, .9)), "ms"))
		if a50 > 0 {
			figs = append(figs, figure("channel post p50 / bare gossipsub p50", float64(p50)/float64(a50), "×"))
		}
	}
	return figs
}

// benchLogf writes a progress line to w (nil: nowhere).
func benchLogf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	}
}

// startBenchNode starts a full node (profile, encrypted store, messenger)
// on loopback in dir/name.
func startBenchNode(ctx context.Context, dir, name string, gossip p2p.GossipParams) (*Node, error) {
	d := filepath.Join(dir, name)
	if _, err := Init(ctx, d, name, KeySource{NoPassphrase: true}); err != nil {
		return nil, err
	}
	return Start(ctx, Options{Dir: d, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true,
		gossip: gossip, Messenger: messenger.Config{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
}

// raiseFileLimit lifts the soft limit on open files to the hard one: a
// thousand hosts in one process hold several thousand sockets.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// swarm is many bare libp2p hosts on loopback joined to one topic, each
// running a validator as a real subscriber does, counting what arrives.
type swarm struct {
	nodes   []*p2p.Node
	topics  []*p2p.Topic
	anchors []*p2p.Topic // joinAnchor's topic on each host
	mu      sync.Mutex
	got     map[string][]time.Time // message key → arrival times
	size    int                    // of the last message delivered
	poke    chan struct{}
	wg      sync.WaitGroup
	hub     *p2p.Node // publishes on topic
	topic   string
}

// newSwarm starts n hosts. check(i) makes host i's validator; key names
// a delivered message (what arrivals are counted under). Each host dials
// dials random earlier ones; host 0 and every tenth also dial hub.
func newSwarm(ctx context.Context, n, dials int, gossip p2p.GossipParams, hub *p2p.Node, topic string, check func(i int) func([]byte) error, key func([]byte) string, log io.Writer) (*swarm, error) {
	raiseFileLimit()
	s := &swarm{got: map[string][]time.Time{}, poke: make(chan struct{}, 1), hub: hub, topic: topic}
	for i := range n {
		nd, err := p2p.New(ctx, p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, Gossip: gossip,
			ConnLow: 200, ConnHigh: 800})
		if err != nil {
			s.close()
			return nil, err
		}
		s.nodes = append(s.nodes, nd)
		chk := check(i)
		t, err := nd.Join(topic, func(_ context.Context, _ string, data []byte) p2p.Verdict {
			if chk(data) != nil {
				return p2p.Reject
			}
			return p2p.Accept
		})
		if err != nil {
			s.close()
			return nil, err
		}
		s.topics = append(s.topics, t)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				m, err := t.Next(context.Background())
				if err != nil {
					return
				}
				k := key(m.Data)
				s.mu.Lock()
				s.size = len(m.Data)
				s.got[k] = append(s.got[k], time.Now())
				s.mu.Unlock()
				select {
				case s.poke <- struct{}{}:
				default:
				}
			}
		}()
		var to []*p2p.Node
		for _, j := range mrand.Perm(i)[:min(dials, i)] {
			to = append(to, s.nodes[j])
		}
		if i%10 == 0 {
			to = append(to, hub)
		}
		// A dial that times out on the loaded machine is tried once more;
		// a host left with no connection at all fails the run.
		connected := 0
		var lastErr error
		for _, o := range to {
			for try := 0; try < 2; try++ {
				if lastErr = nd.Connect(ctx, o.PeerID(), o.Addrs()); lastErr == nil {
					connected++
					break
				}
			}
		}
		if connected == 0 && len(to) > 0 {
			s.close()
			return nil, fmt.Errorf("subscriber %d: %w", i, lastErr)
		}
		if (i+1)%100 == 0 {
			benchLogf(log, "%d subscribers up", i+1)
		}
	}
	return s, nil
}

// waitMeshed waits until a message the hub publishes now reaches every
// host as it passes: the hub sends its own messages to all its topic
// peers (flood publish), and each host forwards them to its mesh. A host
// that is only a topic peer of the others hears of a message through
// gossip at their next heartbeat, and misses it altogether when they
// graft it in that heartbeat (gossip goes only to peers outside the
// mesh): the last host up, grafted a moment after the warm-up message
// reached it as gossip, missed the first measured one.
func (s *swarm) waitMeshed(ctx context.Context, timeout time.Duration) error {
	return s.waitMeshedOn(ctx, s.topic, timeout)
}

// waitMeshedOn is waitMeshed on another topic the hosts and hub joined.
func (s *swarm) waitMeshedOn(ctx context.Context, topic string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := s.unreached(topic)
		if missing < 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("subscriber %d is in no mesh after %v", missing, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling a condition, not a sleep for one
		}
	}
}

// unreached returns a host that a message published on topic by the hub
// now would not reach through the hub's topic peers and the meshes, or -1.
func (s *swarm) unreached(topic string) int {
	index := map[string]int{}
	for i, nd := range s.nodes {
		index[nd.PeerID()] = i
	}
	reached := make([]bool, len(s.nodes))
	var next []int
	visit := func(peers []string) {
		for _, p := range peers {
			if i, ok := index[p]; ok && !reached[i] {
				reached[i] = true
				next = append(next, i)
			}
		}
	}
	visit(s.hub.TopicPeers(topic))
	for len(next) > 0 {
		i := next[0]
		next = next[1:]
		visit(s.nodes[i].MeshPeers(topic))
	}
	for i, ok := range reached {
		if !ok {
			return i
		}
	}
	return -1
}

// wait returns when key has reached want hosts, or when timeout passed;
// it returns the arrival times so far.
func (s *swarm) wait(ctx context.Context, key string, want int, timeout time.Duration) []time.Time {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got := slices.Clone(s.got[key])
		s.mu.Unlock()
		if len(got) >= want {
			return got
		}
		select {
		case <-s.poke:
		case <-deadline.C:
			return got
		case <-ctx.Done():
			return got
		}
	}
}

func (s *swarm) bytesSent() int64 {
	var n int64
	for _, nd := range s.nodes {
		n += nd.PubSubBytesSent()
	}
	return n
}

// joinAnchor joins every host, and hub, to a second topic without a
// validator: bare gossipsub over the same hosts and connections, the
// anchor the channel figures are compared with in the same run. Its
// messages arrive under the key anchorKey(data). It returns hub's topic.
func (s *swarm) joinAnchor(hub *p2p.Node, name string) (*p2p.Topic, error) {
	ht, err := hub.Join(name, nil)
	if err != nil {
		return nil, err
	}
	for _, nd := range s.nodes {
		t, err := nd.Join(name, nil)
		if err != nil {
			ht.Close()
			return nil, err
		}
		s.anchors = append(s.anchors, t)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				m, err := t.Next(context.Background())
				if err != nil {
					return
				}
				k := anchorKey(m.Data)
				s.mu.Lock()
				s.got[k] = append(s.got[k], time.Now())
				s.mu.Unlock()
				select {
				case s.poke <- struct{}{}:
				default:
				}
			}
		}()
	}
	return ht, nil
}

// anchorKey names a bare anchor message: its first 8 bytes.
func anchorKey(data []byte) string {
	if len(data) < 8 {
		return "anchor:?"
	}
	return fmt.Sprintf("anchor:%x", data[:8])
}

func (s *swarm) close() {
	for _, t := range s.anchors {
		t.Close()
	}
	for _, t := range s.topics {
		t.Close()
	}
	for _, nd := range s.nodes {
		nd.Close()
	}
	s.wg.Wait()
}

// ninetyNine returns how many of n make 99 % (at least 1).
func ninetyNine(n int) int { return max(1, (n*99+99)/100) }

// arrival returns the time from t0 until the k-th arrival (1-based).
func arrival(t0 time.Time, got []time.Time, k int) time.Duration {
	s := slices.Clone(got)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	return s[k-1].Sub(t0)
}

// RunChannelScale measures a channel post reaching many subscriber nodes:
// the owner is a full node (Post signs, hash-chains, stores and publishes);
// the subscribers are bare libp2p hosts in this process on loopback, each
// checking the owner's signature in its topic validator before the post
// is forwarded, as a real subscriber does (they do not store posts).
func RunChannelScale(ctx context.Context, dir string, o ChannelScaleOptions) (ChannelScaleResult, error) {
	if o.Subscribers <= 0 {
		o.Subscribers = 1000
	}
	if o.Posts <= 0 {
		o.Posts = 20
	}
	if o.Dials <= 0 {
		o.Dials = 3
	}
	r := ChannelScaleResult{Subscribers: o.Subscribers, Posts: o.Posts, Gossip: o.Gossip}
	owner, err := startBenchNode(ctx, dir, "owner", o.Gossip)
	if err != nil {
		return r, err
	}
	defer owner.Close()
	ci, err := owner.Messenger.CreateChannel(ctx, "city alerts", false)
	if err != nil {
		return r, err
	}
	link, err := owner.Messenger.ChannelInvite(ctx, ci.ID)
	if err != nil {
		return r, err
	}
	topic, check, err := messenger.ChannelReader(link)
	if err != nil {
		return r, err
	}
	benchLogf(o.Log, "starting %d subscribers", o.Subscribers)
	sw, err := newSwarm(ctx, o.Subscribers, o.Dials, o.Gossip, owner.P2P, topic, func(int) func([]byte) error {
		return func(data []byte) error { _, err := check(data); return err }
	}, func(data []byte) string {
		p, err := channel.ParsePost(data)
		if err != nil {
			return ""
		}
		return fmt.Sprint(p.Seq)
	}, o.Log)
	if err != nil {
		return r, err
	}
	defer sw.close()
	if err := sw.waitMeshed(ctx, time.Minute); err != nil {
		return r, err
	}
	// A first post must reach everyone: the mesh works (and the owner's
	// topic has its peers) before anything is timed.
	text := "ALERT: water cut in the north district until 18:00; fill containers now. Shelters open at schools."
	text += strings.Repeat(" ", 100-len(text)) // the 100-byte post
	var calls []time.Duration
	post := func() (string, time.Time, error) {
		t0 := time.Now()
		p, err := owner.Messenger.Post(ctx, ci.ID, text, true)
		calls = append(calls, time.Since(t0))
		return fmt.Sprint(p.Seq), t0, err
	}
	for warm := 0; ; warm++ {
		k, _, err := post()
		if err != nil {
			return r, err
		}
		if got := sw.wait(ctx, k, o.Subscribers, 10*time.Second); len(got) == o.Subscribers {
			break
		} else if warm == 5 {
			return r, fmt.Errorf("warm-up posts reached %d of %d subscribers", len(got), o.Subscribers)
		}
	}
	benchLogf(o.Log, "mesh formed; measuring the idle swarm's CPU for %v", idleSample)
	// What the hosts cost doing nothing (heartbeats, timers), then what
	// the posts add: on a shared machine this says whether the process
	// had the CPU the posts needed.
	cpu0, t0 := processCPU(), time.Now()
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(idleSample): // a measuring window
	}
	r.IdleCores = (processCPU() - cpu0).Seconds() / time.Since(t0).Seconds()
	benchLogf(o.Log, "posting %d", o.Posts)
	warmCalls := len(calls)
	before := sw.bytesSent()
	cpu0, t0 = processCPU(), time.Now()
	for range o.Posts {
		k, t0, err := post()
		if err != nil {
			return r, err
		}
		got := sw.wait(ctx, k, o.Subscribers, postWait)
		n99 := ninetyNine(o.Subscribers)
		r.Reached = append(r.Reached, len(got))
		if len(got) < n99 {
			// Counted as the whole wait: the figure is a miss, not an
			// error (the run goes on to show how often).
			r.To99 = append(r.To99, postWait)
			r.To100 = append(r.To100, 0)
			benchLogf(o.Log, "post %s reached %d of %d subscribers in %v", k, len(got), o.Subscribers, postWait)
			continue
		}
		r.To99 = append(r.To99, arrival(t0, got, n99))
		if len(got) == o.Subscribers {
			r.To100 = append(r.To100, arrival(t0, got, len(got)))
		} else {
			r.To100 = append(r.To100, 0)
		}
	}
	r.CPUPerPost = (processCPU() - cpu0 - time.Duration(r.IdleCores*float64(time.Since(t0)))) / time.Duration(o.Posts)
	// Gossip about the last posts (IHAVE) goes out for three heartbeats
	// more: it belongs to them.
	hb := p2p.DefaultGossipParams.Heartbeat
	if o.Gossip.Heartbeat > 0 {
		hb = o.Gossip.Heartbeat
	}
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(3 * hb):
	}
	r.BytesPerSub = float64(sw.bytesSent()-before) / float64(o.Subscribers) / float64(o.Posts)
	r.PostCall = calls[warmCalls:]
	sw.mu.Lock()
	r.PostBytes = sw.size
	sw.mu.Unlock()
	if o.NoAnchor {
		return r, nil
	}
	benchLogf(o.Log, "anchor: bare gossipsub on the same hosts, %d messages", o.Posts)
	r.AnchorTo99, err = anchorRun(ctx, sw, owner.P2P, o.Subscribers, o.Posts, r.PostBytes)
	return r, err
}

// anchorRun publishes posts messages of size bytes from hub on a topic
// without validators that every host of sw joins, and returns, per
// message, the time until 99 % of them had it (postWait for a miss).
func anchorRun(ctx context.Context, sw *swarm, hub *p2p.Node, subs, posts, size int) ([]time.Duration, error) {
	const anchor = "samizdat-bench-anchor"
	ht, err := sw.joinAnchor(hub, anchor)
	if err != nil {
		return nil, err
	}
	defer ht.Close()
	// A warm-up message that reached a host as gossip says nothing of
	// the next one (see waitMeshed): TestScaleChannelSmoke's first anchor
	// message missed a host grafted in between.
	if err := sw.waitMeshedOn(ctx, anchor, time.Minute); err != nil {
		return nil, err
	}
	seq := uint64(0)
	publish := func() (string, time.Time, error) {
		seq++
		data := make([]byte, max(size, 8))
		binary.BigEndian.PutUint64(data, seq)
		t0 := time.Now()
		return anchorKey(data), t0, ht.Publish(ctx, data)
	}
	// The topic's mesh forms first, as the channel's did before its posts.
	for warm := 0; ; warm++ {
		k, _, err := publish()
		if err != nil {
			return nil, err
		}
		if got := sw.wait(ctx, k, subs, 10*time.Second); len(got) == subs {
			break
		} else if warm == 10 {
			return nil, fmt.Errorf("anchor warm-up messages reached %d of %d hosts", len(got), subs)
		}
	}
	var to99 []time.Duration
	for range posts {
		k, t0, err := publish()
		if err != nil {
			return nil, err
		}
		got := sw.wait(ctx, k, subs, postWait)
		if len(got) < ninetyNine(subs) {
			to99 = append(to99, postWait)
			continue
		}
		to99 = append(to99, arrival(t0, got, ninetyNine(subs)))
	}
	return to99, nil
}

// RunScaleBench runs one scale bench by name at size in a temporary
// directory and prints its figures to w.
func RunScaleBench(ctx context.Context, w io.Writer, name string, size int, verbose bool) error {
	for _, b := range ScaleBenches {
		if b.Name != name {
			continue
		}
		dir, err := os.MkdirTemp("", "samizdat-scale-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// The idle runs start the node under a user id of its own, which
		// must reach its profile in here.
		if err := os.Chmod(dir, 0o711); err != nil {
			return err
		}
		var log io.Writer
		if verbose {
			log = w
		}
		t0 := time.Now()
		figs, err := b.Run(ctx, dir, size, log)
		fmt.Fprintf(w, "samizdat bench %s (size %d), %s, %v\n", name, size, time.Now().UTC().Format(time.DateOnly), time.Since(t0).Round(time.Second))
		for _, f := range figs {
			fmt.Fprintln(w, f)
		}
		return err
	}
	return errors.New("no such scale bench: " + name)
}
