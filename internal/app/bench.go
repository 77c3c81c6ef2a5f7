package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// BenchOptions configure RunBench.
type BenchOptions struct {
	Messages int // for the throughput figure (default 5000)
	Latency  int // sequential messages for the latency figure (default 500)
}

// BenchResult holds the figures of one RunBench.
type BenchResult struct {
	Messages      int
	Throughput    float64 // end-to-end delivered messages per second
	P50, P99      time.Duration
	FloorP50      time.Duration // bare libp2p stream round trip, same hosts
	FloorP99      time.Duration
	ThroughputDur time.Duration
}

// BenchPair is two running nodes that know each other, for benchmarks.
type BenchPair struct {
	Dir      string
	A, B     *Node
	cleanups []func()
}

// NewBenchPair starts two nodes on loopback TCP in fresh profiles under
// dir, each with the other as a contact ("b" in A, "a" in B).
func NewBenchPair(ctx context.Context, dir string) (*BenchPair, error) {
	p := &BenchPair{Dir: dir}
	var nodes []*Node
	for _, name := range []string{"a", "b"} {
		d := filepath.Join(dir, name)
		if _, err := Init(ctx, d, name, KeySource{NoPassphrase: true}); err != nil {
			p.Close()
			return nil, err
		}
		n, err := Start(ctx, Options{Dir: d, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true,
			Messenger: messenger.Config{RetryMin: 50 * time.Millisecond, RetryMax: time.Second}})
		if err != nil {
			p.Close()
			return nil, err
		}
		nodes = append(nodes, n)
		p.cleanups = append(p.cleanups, func() { n.Close() })
	}
	p.A, p.B = nodes[0], nodes[1]
	for _, pair := range [][2]*Node{{p.A, p.B}, {p.B, p.A}} {
		link, err := pair[1].Messenger.Invite(ctx)
		if err != nil {
			p.Close()
			return nil, err
		}
		if _, err := pair[0].Messenger.AddContact(ctx, link, ""); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// Close stops both nodes.
func (p *BenchPair) Close() {
	for _, f := range p.cleanups {
		f()
	}
}

// deliveredWaiter tracks delivered events of A's messages.
type deliveredWaiter struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
	done    map[string]bool
}

func (p *BenchPair) watchDelivered(ctx context.Context) *deliveredWaiter {
	w := &deliveredWaiter{waiting: map[string]chan struct{}{}, done: map[string]bool{}}
	ch, stop := p.A.Messenger.Subscribe()
	go func() {
		<-ctx.Done()
		stop()
	}()
	go func() {
		for e := range ch {
			if e.Type != messenger.EventState || e.State != messenger.StateDelivered {
				continue
			}
			w.mu.Lock()
			w.done[e.MessageID] = true
			if c, ok := w.waiting[e.MessageID]; ok {
				close(c)
				delete(w.waiting, e.MessageID)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *deliveredWaiter) wait(ctx context.Context, id string) error {
	w.mu.Lock()
	if w.done[id] {
		w.mu.Unlock()
		return nil
	}
	c := make(chan struct{})
	w.waiting[id] = c
	w.mu.Unlock()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("message %s not delivered in 30 s", id)
	}
}

// Latency sends n messages one at a time from A to B and returns the time
// from Send to the delivered state for each.
func (p *BenchPair) Latency(ctx context.Context, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := p.watchDelivered(ctx)
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		m, err := p.A.Messenger.Send(ctx, "b", fmt.Sprintf("latency probe %d", i))
		if err != nil {
			return nil, err
		}
		if err := w.wait(ctx, m.ID); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// ThroughputSenders is how many goroutines send at once in Throughput
// (a shop's script, a bridge, several chats open: Send is concurrent).
const ThroughputSenders = 32

// Throughput queues n messages from A to B from ThroughputSenders
// goroutines and returns the time until all are delivered.
func (p *BenchPair) Throughput(ctx context.Context, n int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := p.watchDelivered(ctx)
	ids := make([]string, n)
	errs := make(chan error, ThroughputSenders)
	t0 := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < ThroughputSenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += ThroughputSenders {
				m, err := p.A.Messenger.Send(ctx, "b", fmt.Sprintf("throughput message %d with a little text", i))
				if err != nil {
					errs <- err
					return
				}
				ids[i] = m.ID
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	for _, id := range ids {
		if err := w.wait(ctx, id); err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

// Floor measures n bare libp2p stream round trips of 100 bytes between the
// pair's hosts (new stream per round trip, as the messenger opens one per
// delivery batch).
func (p *BenchPair) Floor(ctx context.Context, n int) ([]time.Duration, error) {
	p.B.P2P.Handle(p2p.EchoProtocol, p2p.EchoHandler)
	defer p.B.P2P.Unhandle(p2p.EchoProtocol)
	msg, reply := make([]byte, 100), make([]byte, 100)
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		s, err := p.A.P2P.OpenStream(ctx, p.B.P2P.PeerID(), p2p.EchoProtocol)
		if err != nil {
			return nil, err
		}
		if err := p2p.EchoRoundTrip(s, msg, reply); err != nil {
			s.Reset()
			return nil, err
		}
		s.Close()
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// Percentile returns the q-th percentile (0..1) of ds.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

// RunBench measures, between two nodes on loopback: the bare stream round
// trip (the floor), end-to-end latency (send → encrypted ack → delivered),
// throughput, and the RSS of an idle `samizdat up` process.
func RunBench(ctx context.Context, w io.Writer, o BenchOptions) error {
	if o.Messages <= 0 {
		o.Messages = 5000
	}
	if o.Latency <= 0 {
		o.Latency = 500
	}
	dir, err := os.MkdirTemp("", "samizdat-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := NewBenchPair(ctx, dir)
	if err != nil {
		return err
	}
	defer p.Close()
	// Warm up: first session set-up (PQXDH) and connections.
	if _, err := p.Latency(ctx, 20); err != nil {
		return err
	}
	floor, err := p.Floor(ctx, 1000)
	if err != nil {
		return err
	}
	lat, err := p.Latency(ctx, o.Latency)
	if err != nil {
		return err
	}
	d, err := p.Throughput(ctx, o.Messages)
	if err != nil {
		return err
	}
	f50, f99 := Percentile(floor, .5), Percentile(floor, .99)
	l50, l99 := Percentile(lat, .5), Percentile(lat, .99)
	fmt.Fprintf(w, "samizdat bench: two nodes on loopback TCP, %s\n", time.Now().UTC().Format(time.DateOnly))
	fmt.Fprintf(w, "floor (bare libp2p stream round trip, 100 B, new stream each): p50 %v  p99 %v\n", f50, f99)
	fmt.Fprintf(w, "latency (send → encrypted ack → delivered, %d sequential):       p50 %v  p99 %v  (p50 = %.1f× floor)\n",
		o.Latency, l50, l99, float64(l50)/float64(f50))
	fmt.Fprintf(w, "throughput (%d messages from %d concurrent senders, until all delivered): %.0f msgs/s (%v)\n",
		o.Messages, ThroughputSenders, float64(o.Messages)/d.Seconds(), d.Round(time.Millisecond))
	if rss, err := idleRSS(ctx, dir); err == nil {
		fmt.Fprintf(w, "idle daemon RSS (samizdat up, 5 s after start): %.1f MB\n", float64(rss)/(1<<20))
	} else {
		fmt.Fprintf(w, "idle daemon RSS: not measured (%v)\n", err)
	}
	return nil
}
