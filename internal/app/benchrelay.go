package app

// `samizdat bench --relay` (issue 18): one relay on loopback driven by many
// simulated users, each a libp2p host of its own opening a stream per
// deposit as a sender does.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// RelayBenchOptions size RunRelayBench. Zero fields take the defaults in
// brackets.
type RelayBenchOptions struct {
	Users        int // simulated users, each a libp2p host [50]
	PerUser      int // concurrent depositors per user [4]
	Deposits     int // deposits timed [20,000]
	Mailboxes    int // mailboxes they go to [1,000]
	CatchUp      int // envelopes waiting in one mailbox for the catch-up figure [10,000]
	EnvelopeSize int // bytes per envelope [512: a padded short text]
	// Pipelined is the batch each depositor sends on one stream in a
	// second run of Deposits (mailbox.DepositBatch: all sent, the answers
	// read as they come) [50]; negative skips that run.
	Pipelined int
}

func (o *RelayBenchOptions) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Users, 50)
	def(&o.PerUser, 4)
	def(&o.Deposits, 20000)
	def(&o.Mailboxes, 1000)
	def(&o.CatchUp, 10000)
	def(&o.EnvelopeSize, 512)
	if o.Pipelined == 0 {
		o.Pipelined = 50
	}
}

// RelayBenchResult are the figures of one RunRelayBench.
type RelayBenchResult struct {
	Depositors        int
	Deposits          int
	DepositTime       time.Duration
	DepositsPerSec    float64
	CPUPerDeposit     time.Duration // the whole process: relay and simulated users
	DepositsPerCommit float64
	// The same deposits again, Pipelined per stream (zero when skipped).
	PipelinedTime      time.Duration
	PipelinedPerSec    float64
	PipelinedCPU       time.Duration // per deposit
	PipelinedPerCommit float64
	CatchUp            int
	CatchUpTime        time.Duration // session, pages and deletes until the mailbox is empty
	Mailboxes          int
	Held               int     // envelopes the mailboxes hold at the end (both runs of deposits)
	DiskPerMailbox     float64 // mailbox.db bytes per mailbox holding Held/Mailboxes envelopes
	DiskPerEnvelope    float64 // bytes on disk per envelope beyond its own size
	HeapPerMailbox     float64 // Go heap growth of the process per mailbox
}

// RunRelayBench measures one relay's capacity on loopback; see
// RelayBenchOptions. It prints nothing; see PrintRelayBench.
func RunRelayBench(ctx context.Context, o RelayBenchOptions) (*RelayBenchResult, error) {
	o.defaults()
	dir, err := os.MkdirTemp("", "samizdat-bench-relay-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	unlimited := mailbox.RateLimit{PerSecond: -1}
	r, err := StartRelay(ctx, RelayOptions{Dir: filepath.Join(dir, "relay"), LoopbackOnly: true,
		Mailbox: MailboxOptions{Quotas: mailbox.Quotas{Total: -1}, RateLimit: unlimited, MailboxRateLimit: unlimited}})
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			r.Close()
		}
	}()
	users := make([]*p2p.Node, o.Users)
	for i := range users {
		n, err := p2p.New(ctx, p2p.Config{LoopbackOnly: true})
		if err != nil {
			return nil, err
		}
		defer n.Close()
		n.AddAddrs(r.PeerID(), r.Addrs())
		if err := n.Connect(ctx, r.PeerID(), r.Addrs()); err != nil {
			return nil, err
		}
		users[i] = n
	}
	res := &RelayBenchResult{Depositors: o.Users * o.PerUser, Deposits: o.Deposits, CatchUp: o.CatchUp, Mailboxes: o.Mailboxes}

	// Deposits from many depositors into many mailboxes.
	ids := make([]mailbox.ID, o.Mailboxes)
	for i := range ids {
		_, _ = rand.Read(ids[i][:])
	}
	heap0 := heapInUse()
	res.DepositTime, res.CPUPerDeposit, res.DepositsPerCommit, err = relayDeposits(ctx, r, users, ids, o, 1)
	if err != nil {
		return nil, err
	}
	res.DepositsPerSec = float64(o.Deposits) / res.DepositTime.Seconds()
	res.HeapPerMailbox = float64(heapInUse()-heap0) / float64(o.Mailboxes)
	if o.Pipelined > 0 {
		// Fresh envelopes (another seed), so none is a duplicate.
		res.PipelinedTime, res.PipelinedCPU, res.PipelinedPerCommit, err = relayDeposits(ctx, r, users, ids, o, o.Pipelined)
		if err != nil {
			return nil, err
		}
		res.PipelinedPerSec = float64(o.Deposits) / res.PipelinedTime.Seconds()
	}

	// Catch-up: CatchUp envelopes wait in one mailbox; the owner pages
	// through them and deletes each page, as a client coming online does.
	key, err := mailbox.NewKey()
	if err != nil {
		return nil, err
	}
	id := mailbox.KeyID(key)
	batch := make([][]byte, 0, 500)
	for i := 0; i < o.CatchUp; i++ {
		env := make([]byte, o.EnvelopeSize)
		_, _ = rand.Read(env)
		batch = append(batch, env)
		if len(batch) == cap(batch) || i == o.CatchUp-1 {
			if n, err := mailbox.DepositBatch(ctx, users[i%len(users)], r.PeerID(), id, batch); err != nil || n != len(batch) {
				return nil, fmt.Errorf("catch-up deposit: %d of %d, %w", n, len(batch), err)
			}
			batch = batch[:0]
		}
	}
	owner := users[0]
	t0 := time.Now()
	s, err := mailbox.OpenSession(ctx, owner, r.PeerID(), key)
	if err != nil {
		return nil, err
	}
	got := 0
	for {
		items, more, err := s.Next(ctx, mailbox.MaxPageItems)
		if err != nil {
			s.Close()
			return nil, err
		}
		hs := make([]mailbox.Hash, len(items))
		for i, it := range items {
			hs[i] = it.Hash
		}
		if len(hs) > 0 {
			if _, err := s.Delete(ctx, hs); err != nil {
				s.Close()
				return nil, err
			}
		}
		got += len(items)
		if !more {
			break
		}
	}
	s.Close()
	res.CatchUpTime = time.Since(t0)
	if got != o.CatchUp {
		return nil, fmt.Errorf("catch-up fetched %d envelopes, want %d", got, o.CatchUp)
	}

	// Disk: the database once the relay is closed (WAL checkpointed).
	closed = true
	if err := r.Close(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(filepath.Join(dir, "relay", MailboxDBFile))
	if err != nil {
		return nil, err
	}
	res.Held = o.Deposits
	if o.Pipelined > 0 {
		res.Held *= 2
	}
	res.DiskPerMailbox = float64(fi.Size()) / float64(o.Mailboxes)
	res.DiskPerEnvelope = float64(fi.Size())/float64(res.Held) - float64(o.EnvelopeSize)
	return res, nil
}

// relayDeposits times o.Deposits deposits of o.Users × o.PerUser
// depositors into ids, perStream on each stream (1: a stream each, as a
// sender with one message opens; more: pipelined, as a sender deposits a
// queue), and returns the time, the CPU per deposit (the whole process:
// relay and users) and the deposits per commit.
func relayDeposits(ctx context.Context, r *Relay, users []*p2p.Node, ids []mailbox.ID, o RelayBenchOptions, perStream int) (time.Duration, time.Duration, float64, error) {
	tx0, _ := r.Mailbox.st.GroupStats()
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	t0, cpu0 := time.Now(), processCPU()
	for _, u := range users {
		for range o.PerUser {
			wg.Add(1)
			go func() {
				defer wg.Done()
				seed := make([]byte, 8)
				_, _ = rand.Read(seed)
				envs := make([][]byte, perStream)
				for k := range envs {
					envs[k] = make([]byte, o.EnvelopeSize)
					_, _ = rand.Read(envs[k])
				}
				for {
					i := next.Add(int64(perStream)) - int64(perStream)
					if i >= int64(o.Deposits) || ctx.Err() != nil {
						return
					}
					batch := envs[:min(int64(perStream), int64(o.Deposits)-i)]
					for k, env := range batch {
						binary.LittleEndian.PutUint64(env, uint64(i)+uint64(k)) // each envelope its own
						copy(env[8:], seed)
					}
					id := ids[(i/int64(perStream))%int64(len(ids))]
					var err error
					if len(batch) == 1 {
						err = mailbox.Deposit(ctx, u, r.PeerID(), id, batch[0])
					} else {
						var n int
						if n, err = mailbox.DepositBatch(ctx, u, r.PeerID(), id, batch); err == nil && n != len(batch) {
							err = fmt.Errorf("%d of %d deposits accepted", n, len(batch))
						}
					}
					if err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	d, cpu := time.Since(t0), (processCPU()-cpu0)/time.Duration(o.Deposits)
	if firstErr != nil {
		return 0, 0, 0, fmt.Errorf("deposit: %w", firstErr)
	}
	perCommit := 0.0
	if tx, _ := r.Mailbox.st.GroupStats(); tx > tx0 {
		perCommit = float64(o.Deposits) / float64(tx-tx0)
	}
	return d, cpu, perCommit, nil
}

// PrintRelayBench writes res for people.
func PrintRelayBench(w io.Writer, o RelayBenchOptions, res *RelayBenchResult) {
	o.defaults()
	fmt.Fprintf(w, "samizdat bench --relay: one relay on loopback TCP, %d simulated users × %d depositors, %s\n",
		o.Users, o.PerUser, time.Now().UTC().Format(time.DateOnly))
	fmt.Fprintf(w, "deposits (%d × %d B into %d mailboxes, a stream each): %.0f deposits/s (%v), %v CPU per deposit (relay and users), %.1f deposits per commit\n",
		res.Deposits, o.EnvelopeSize, res.Mailboxes, res.DepositsPerSec, res.DepositTime.Round(time.Millisecond), res.CPUPerDeposit.Round(time.Microsecond), res.DepositsPerCommit)
	if res.PipelinedPerSec > 0 {
		fmt.Fprintf(w, "deposits again, %d pipelined on each stream (mailbox.DepositBatch): %.0f deposits/s (%v), %v CPU per deposit, %.1f deposits per commit\n",
			o.Pipelined, res.PipelinedPerSec, res.PipelinedTime.Round(time.Millisecond), res.PipelinedCPU.Round(time.Microsecond), res.PipelinedPerCommit)
	}
	fmt.Fprintf(w, "catch-up (%d envelopes waiting in one mailbox, pages of %d fetched and deleted): %v\n",
		res.CatchUp, mailbox.MaxPageItems, res.CatchUpTime.Round(time.Millisecond))
	fmt.Fprintf(w, "cost per mailbox (%d envelopes each): %.0f B on disk (%.0f B per envelope beyond its size), %.0f B of Go heap\n",
		res.Held/res.Mailboxes, res.DiskPerMailbox, res.DiskPerEnvelope, res.HeapPerMailbox)
}

// heapInUse is the live Go heap after a collection (two: the second
// empties the sync.Pools' victim caches, buffers of streams that ended).
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
