package app

// The suite's anchors and the figures this package measures (see
// benchsuite.go).

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Anchor names: what a figure is compared with.
const (
	AnchorRTT    = "anchor.libp2pRoundTripP50"
	AnchorRTT99  = "anchor.libp2pRoundTripP99"
	AnchorCopy   = "anchor.libp2pStreamCopy"
	AnchorCommit = "anchor.sqliteCommit"
	AnchorGossip = "anchor.gossipsubReachAll"
)

var suiteAnchors = []struct {
	name, figure string
	fn           SuiteFigureFunc
}{
	{AnchorRTT, "bare libp2p stream round trip, 100 B, new stream each, between the 1:1 pair: p50", anchorRTT(.5)},
	{AnchorRTT99, "the same round trip: p99", anchorRTT(.99)},
	{AnchorCopy, "bare libp2p stream copy between the 1:1 pair", anchorCopy},
	{AnchorCommit, "raw SQLite commit (one 100-byte row) on the same encrypted VFS", anchorCommit},
	{AnchorGossip, "bare gossipsub (no samizdat layer): a 100-byte message from one host until all others have it, p99", anchorGossip},
}

// suiteState holds what several figures share in one run.
type suiteState struct {
	mu      sync.Mutex
	dir     string
	pair    *BenchPair
	floor   []time.Duration
	lat     []time.Duration
	relay   *RelayBenchResult
	relayO  RelayBenchOptions
	relayEr error
}

type suiteStateKey struct{}

func stateOf(ctx context.Context) *suiteState {
	return ctx.Value(suiteStateKey{}).(*suiteState)
}

func (s *suiteState) close() {
	if s.pair != nil {
		s.pair.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// benchPair returns the run's two nodes, started (and warmed up) on first
// use.
func (s *suiteState) benchPair(ctx context.Context) (*BenchPair, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pair != nil {
		return s.pair, nil
	}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "samizdat-suite-")
		if err != nil {
			return nil, err
		}
		s.dir = d
	}
	p, err := NewBenchPair(ctx, filepath.Join(s.dir, "pair"))
	if err != nil {
		return nil, err
	}
	if _, err := p.Latency(ctx, 5); err != nil {
		p.Close()
		return nil, err
	}
	s.pair = p
	return p, nil
}

func suiteSize(env *SuiteEnv, small, full int) int {
	if env.Small {
		return small
	}
	return full
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func anchorRTT(q float64) SuiteFigureFunc {
	return func(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
		st := stateOf(ctx)
		p, err := st.benchPair(ctx)
		if err != nil {
			return SuiteFigure{}, err
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.floor == nil {
			if st.floor, err = p.Floor(ctx, suiteSize(env, 20, 1000)); err != nil {
				return SuiteFigure{}, err
			}
		}
		return SuiteFigure{Value: ms(Percentile(st.floor, q)), Unit: "ms", Measured: true}, nil
	}
}

// benchSinkProtocol reads a stream to its end and closes it: the stream
// copy anchor.
const benchSinkProtocol = "/samizdat/bench-sink/1"

func anchorCopy(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	p, err := stateOf(ctx).benchPair(ctx)
	if err != nil {
		return SuiteFigure{}, err
	}
	p.B.P2P.Handle(benchSinkProtocol, func(s p2p.Stream) {
		_, _ = io.Copy(io.Discard, s)
		_ = s.Close()
	})
	defer p.B.P2P.Unhandle(benchSinkProtocol)
	total := suiteSize(env, 1<<20, 64<<20)
	buf := make([]byte, 64<<10)
	_, _ = rand.Read(buf)
	t0 := time.Now()
	s, err := p.A.P2P.OpenStream(ctx, p.B.P2P.PeerID(), benchSinkProtocol)
	if err != nil {
		return SuiteFigure{}, err
	}
	_ = s.SetDeadline(time.Now().Add(2 * time.Minute))
	for sent := 0; sent < total; sent += len(buf) {
		if _, err := s.Write(buf); err != nil {
			s.Reset()
			return SuiteFigure{}, err
		}
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return SuiteFigure{}, err
	}
	if _, err := io.Copy(io.Discard, s); err != nil { // until the sink has it all
		return SuiteFigure{}, err
	}
	d := time.Since(t0)
	return SuiteFigure{Value: float64(total) / d.Seconds() / 1e6, Unit: "MB/s", Measured: true,
		Note: fmt.Sprintf("%d MiB", total>>20)}, nil
}

func anchorCommit(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	dir, err := os.MkdirTemp("", "samizdat-suite-commit-")
	if err != nil {
		return SuiteFigure{}, err
	}
	defer os.RemoveAll(dir)
	key := make([]byte, store.KeySize)
	_, _ = rand.Read(key)
	n := suiteSize(env, 20, 3000)
	ds, err := store.MeasureCommits(ctx, filepath.Join(dir, "bench.db"), key, n)
	if err != nil {
		return SuiteFigure{}, err
	}
	var d time.Duration // the commits alone, not opening the file
	for _, c := range ds {
		d += c
	}
	return SuiteFigure{Value: float64(n) / d.Seconds(), Unit: "commits/s", Measured: true,
		Note: fmt.Sprintf("p50 %.0f µs", float64(Percentile(ds, .5))/1e3)}, nil
}

func anchorGossip(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	k, msgs := suiteSize(env, 3, 10), suiteSize(env, 3, 50)
	nodes := make([]*p2p.Node, k)
	for i := range nodes {
		n, err := p2p.New(ctx, p2p.Config{LoopbackOnly: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
		if err != nil {
			return SuiteFigure{}, err
		}
		defer n.Close()
		nodes[i] = n
	}
	for i := 1; i < k; i++ { // a hub and a chain: gossipsub forms its mesh over them
		peers := []int{0}
		if i > 1 {
			peers = append(peers, i-1)
		}
		for _, j := range peers {
			if err := nodes[i].Connect(ctx, nodes[j].PeerID(), nodes[j].Addrs()); err != nil {
				return SuiteFigure{}, err
			}
		}
	}
	topics := make([]*p2p.Topic, k)
	for i, n := range nodes {
		t, err := n.Join("samizdat-suite-anchor", nil)
		if err != nil {
			return SuiteFigure{}, err
		}
		defer t.Close()
		topics[i] = t
	}
	// Wait until every host knows the publisher is in the topic, and the
	// publisher knows them.
	deadline := time.Now().Add(60 * time.Second)
	for !gossipReady(nodes[0].PeerID(), topics) {
		if time.Now().After(deadline) {
			return SuiteFigure{}, errors.New("gossipsub peers did not find each other in 30 s")
		}
		time.Sleep(20 * time.Millisecond) // polling the condition
	}
	// Each receiver records when each message arrived.
	type arrival struct {
		msg uint32
		at  time.Time
	}
	arrivals := make(chan arrival, 1024)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, t := range topics[1:] {
		go func() {
			for {
				m, err := t.Next(rctx)
				if err != nil {
					return
				}
				select {
				case arrivals <- arrival{binary.BigEndian.Uint32(m.Data), time.Now()}:
				case <-rctx.Done():
					return
				}
			}
		}()
	}
	// send publishes message i and returns when every other host has it
	// (arrivals of other messages, late warm-ups, are skipped).
	send := func(i uint32, wait time.Duration) (time.Duration, int, error) {
		payload := make([]byte, 100) // pubsub keeps it: one each
		binary.BigEndian.PutUint32(payload, i)
		t0 := time.Now()
		if err := topics[0].Publish(ctx, payload); err != nil {
			return 0, 0, err
		}
		timeout := time.After(wait)
		for got := 0; got < k-1; {
			select {
			case a := <-arrivals:
				if a.msg == i {
					got++
					if got == k-1 {
						return a.at.Sub(t0), got, nil
					}
				}
			case <-timeout:
				return 0, got, nil
			}
		}
		return 0, k - 1, nil
	}
	// Warm up until gossipsub has built its mesh: a message reaches
	// every host promptly (before, only the publisher's first mesh
	// peers get it).
	warm := uint32(1 << 31)
	for ok := false; !ok; warm++ {
		if time.Now().After(deadline) {
			return SuiteFigure{}, errors.New("gossipsub mesh did not form in 30 s")
		}
		_, got, err := send(warm, 2*time.Second)
		if err != nil {
			return SuiteFigure{}, err
		}
		ok = got == k-1
	}
	var lat []time.Duration
	for i := range uint32(msgs) {
		d, got, err := send(i, 10*time.Second)
		if err != nil {
			return SuiteFigure{}, err
		}
		if got < k-1 {
			return SuiteFigure{}, fmt.Errorf("gossipsub message %d reached %d of %d hosts in 10 s", i, got, k-1)
		}
		lat = append(lat, d)
	}
	return SuiteFigure{Value: ms(Percentile(lat, .99)), Unit: "ms", Measured: true,
		Note: fmt.Sprintf("%d hosts, %d messages, p50 %.2f ms", k, msgs, ms(Percentile(lat, .5)))}, nil
}

func suite1to1Throughput(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	p, err := stateOf(ctx).benchPair(ctx)
	if err != nil {
		return SuiteFigure{}, err
	}
	// The latency figures first, one message at a time on the quiet pair:
	// right after the burst below they would measure the burst's
	// background work (its search indexing and WAL checkpoint) instead.
	if _, err := stateOf(ctx).latency(ctx, env); err != nil {
		return SuiteFigure{}, err
	}
	n := suiteSize(env, 50, 10000)
	d, err := p.Throughput(ctx, n)
	if err != nil {
		return SuiteFigure{}, err
	}
	return SuiteFigure{Value: float64(n) / d.Seconds(), Unit: "msgs/s", Measured: true,
		Note: fmt.Sprintf("%d messages, %d senders", n, ThroughputSenders)}, nil
}

// latency runs the sequential latency probe once per suite run.
func (s *suiteState) latency(ctx context.Context, env *SuiteEnv) ([]time.Duration, error) {
	p, err := s.benchPair(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lat == nil {
		if s.lat, err = p.Latency(ctx, suiteSize(env, 10, 500)); err != nil {
			return nil, err
		}
	}
	return s.lat, nil
}

func suite1to1P50(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	lat, err := stateOf(ctx).latency(ctx, env)
	if err != nil {
		return SuiteFigure{}, err
	}
	return SuiteFigure{Value: ms(Percentile(lat, .5)), Unit: "ms", Measured: true,
		Note: fmt.Sprintf("%d messages one at a time, before the throughput burst", len(lat))}, nil
}

func suite1to1P99(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	lat, err := stateOf(ctx).latency(ctx, env)
	if err != nil {
		return SuiteFigure{}, err
	}
	f := SuiteFigure{Value: ms(Percentile(lat, .99)), Unit: "ms", Measured: true}
	if a, ok := env.Anchor(AnchorRTT99); ok {
		f.Anchor, f.AnchorValue, f.AnchorUnit = a.Name, a.Value, a.Unit
	}
	return f, nil
}

// relayBench runs RunRelayBench once per suite run.
func (s *suiteState) relayBench(ctx context.Context, env *SuiteEnv) (*RelayBenchResult, RelayBenchOptions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.relay == nil && s.relayEr == nil {
		if env.Small {
			s.relayO = RelayBenchOptions{Users: 2, PerUser: 2, Deposits: 40, Mailboxes: 10, CatchUp: 50, Pipelined: 5}
		}
		s.relay, s.relayEr = RunRelayBench(ctx, s.relayO)
		s.relayO.defaults()
	}
	return s.relay, s.relayO, s.relayEr
}

func suiteRelayDeposits(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	r, o, err := stateOf(ctx).relayBench(ctx, env)
	if err != nil {
		return SuiteFigure{}, err
	}
	return SuiteFigure{Value: r.DepositsPerSec, Unit: "deposits/s", Measured: true,
		Note: fmt.Sprintf("%d depositors (%d hosts), %d × %d B into %d mailboxes; %.1f deposits per commit; %.0f µs CPU per deposit; per mailbox: %.0f B disk, %.0f B heap",
			r.Depositors, o.Users, r.Deposits, o.EnvelopeSize, r.Mailboxes, r.DepositsPerCommit,
			float64(r.CPUPerDeposit)/1e3, r.DiskPerMailbox, r.HeapPerMailbox)}, nil
}

func suiteRelayPipelined(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	r, o, err := stateOf(ctx).relayBench(ctx, env)
	if err != nil {
		return SuiteFigure{}, err
	}
	return SuiteFigure{Value: r.PipelinedPerSec, Unit: "deposits/s", Measured: true,
		Note: fmt.Sprintf("%d depositors (%d hosts), %d × %d B into %d mailboxes, %d pipelined on each stream; %.0f deposits per commit; %.0f µs CPU per deposit",
			r.Depositors, o.Users, r.Deposits, o.EnvelopeSize, r.Mailboxes, o.Pipelined, r.PipelinedPerCommit, float64(r.PipelinedCPU)/1e3)}, nil
}

func suiteRelayCatchUp(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
	r, o, err := stateOf(ctx).relayBench(ctx, env)
	if err != nil {
		return SuiteFigure{}, err
	}
	f := SuiteFigure{Value: r.CatchUpTime.Seconds(), Unit: "s", Measured: true,
		Note: fmt.Sprintf("%d envelopes of %d B", r.CatchUp, o.EnvelopeSize)}
	// The anchor: the bare stream copy of the same bytes.
	if a, ok := env.Anchor(AnchorCopy); ok && a.Value > 0 {
		f.Anchor = a.Name
		f.AnchorValue = float64(r.CatchUp*o.EnvelopeSize) / (a.Value * 1e6)
		f.AnchorUnit = "s (bare copy of the same bytes)"
	}
	return f, nil
}

func gossipReady(publisher string, topics []*p2p.Topic) bool {
	if len(topics[0].Peers()) < len(topics)-1 {
		return false
	}
	for _, t := range topics[1:] {
		found := false
		for _, p := range t.Peers() {
			found = found || p == publisher
		}
		if !found {
			return false
		}
	}
	return true
}
