package messenger

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// ProtocolHistory is the stream protocol on which subscribers of a channel
// or members of a group serve what they kept of its topic: one request,
// one response per stream. Everything served is verified by the asker, so
// any peer may be asked.
const ProtocolHistory = "/samizdat/history/1"

// Limits of the broadcast machinery.
const (
	historyTimeout  = 10 * time.Second
	historyPageSize = 500
	historyPeersTry = 8 // peers asked per round before backing off
	fillRetryMin    = 500 * time.Millisecond
	fillRetryMax    = 30 * time.Second
	fillRetries     = 8
	tailFetchEvery  = 10 * time.Second
	// tailFetchIdle is the longest wait between routine history checks of
	// a quiet topic: the wait doubles from tailFetchEvery after each check
	// while nothing arrives live, and is back at tailFetchEvery with the
	// next message (an idle node's cost, docs/BENCHMARKS.md "Idle cost":
	// at 2 min the checks of 15 quiet topics, and the answers to its
	// peers', were the largest share of what an idle node sent). Posts
	// come live over gossipsub; a gap is fetched when the next post shows
	// it, and a node back online checks at once (backOnline): this wait
	// bounds only a last post withheld by every neighbour.
	tailFetchIdle    = 10 * time.Minute
	followHistoryAge = 30 * 24 * time.Hour
	topicPeersWait   = 2 * time.Second
)

// PubSub is what channels and groups need from the network besides
// Transport: gossipsub topics. *p2p.Node implements it; without it
// (offline, or a transport that lacks it) channels and groups still work
// locally and catch up from history when a node with it runs the profile.
type PubSub interface {
	Join(topic string, validate p2p.Validator) (*p2p.Topic, error)
}

var _ PubSub = (*p2p.Node)(nil)

// broadcast is the runtime state of the channels and groups this node
// takes part in: joined topics and their reader goroutines.
type broadcast struct {
	mu     sync.Mutex
	ctx    context.Context // the messenger's run context; nil before Start
	topics map[string]*joined
	wg     sync.WaitGroup

	// Test hooks (set before the channels are joined): drop lets a test
	// play a censor that withholds some posts; tamper one that serves
	// altered history.
	drop   func(item []byte) bool
	tamper func(item []byte) []byte

	rate peerRate // of history requests, per peer
}

// joined is one topic this node is subscribed to.
type joined struct {
	topic   *p2p.Topic // nil when offline
	channel []byte     // channel id, or
	group   []byte     // group id
	kick    chan struct{}
	// live is set by the reader on every message from the network: the
	// topic is not quiet, so the routine history checks stay frequent.
	live atomic.Bool
	// checked is when a group's last history round that reached a peer
	// began (unix ms): the next asks for what arrived since, less
	// groupHistoryWait.
	checked atomic.Int64
}

func (m *Messenger) bc() *broadcast {
	m.bcOnce.Do(func() { m.bcast = &broadcast{topics: map[string]*joined{}} })
	return m.bcast
}

// startBroadcast joins the topics of every stored channel and group and
// serves history; called by Start.
func (m *Messenger) startBroadcast(ctx context.Context) {
	b := m.bc()
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	if m.tr != nil {
		m.tr.Handle(ProtocolHistory, m.handleHistory)
	}
	var chans []store.Channel
	var groups []store.Group
	_ = m.st.View(ctx, func(tx *store.Tx) (err error) {
		if chans, err = tx.Channels(); err != nil {
			return err
		}
		groups, err = tx.Groups()
		return err
	})
	for _, c := range chans {
		m.joinChannel(&c)
	}
	for _, g := range groups {
		if !g.Gone {
			m.joinGroup(&g)
		}
	}
}

// stopBroadcast leaves every topic and waits for the readers; called by
// Close after the run context is cancelled.
func (m *Messenger) stopBroadcast() {
	b := m.bc()
	if m.tr != nil {
		m.tr.Unhandle(ProtocolHistory)
	}
	b.mu.Lock()
	ts := b.topics
	b.topics = map[string]*joined{}
	b.ctx = nil
	b.mu.Unlock()
	for _, j := range ts {
		if j.topic != nil {
			_ = j.topic.Close()
		}
	}
	b.wg.Wait()
}

// join subscribes to a topic (if the transport has pubsub) and starts its
// reader and its history filler. It does nothing before Start or after
// Close, or if the topic is joined already.
func (m *Messenger) join(name string, j *joined, validate p2p.Validator, handle func(ctx context.Context, from string, data []byte), fill func(ctx context.Context)) {
	b := m.bc()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil || b.topics[name] != nil {
		return
	}
	ctx := b.ctx
	j.kick = make(chan struct{}, 1)
	if ps, ok := m.tr.(PubSub); ok && m.tr != nil {
		t, err := ps.Join(name, validate)
		if err != nil {
			m.log.Warn("topicJoinFailed", "err", err)
		} else {
			j.topic = t
		}
	}
	b.topics[name] = j
	if j.topic != nil {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				msg, err := j.topic.Next(ctx)
				if err != nil {
					return
				}
				if !msg.Local {
					j.live.Store(true)
					handle(ctx, msg.From, msg.Data)
				}
			}
		}()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		// A first round at once: catch up on what was posted while we
		// were away; then on every kick (a gap seen) and now and then.
		kickJoined(j)
		every := tailFetchEvery
		t := time.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-j.kick:
			case <-t.C:
				if j.live.Swap(false) {
					every = tailFetchEvery
				} else {
					every = min(2*every, tailFetchIdle)
				}
				t.Reset(every)
			}
			fill(ctx)
		}
	}()
}

// leave unsubscribes from a topic.
func (m *Messenger) leave(name string) {
	b := m.bc()
	b.mu.Lock()
	j := b.topics[name]
	delete(b.topics, name)
	b.mu.Unlock()
	if j != nil && j.topic != nil {
		_ = j.topic.Close()
	}
}

func (m *Messenger) joinedTopic(name string) *joined {
	b := m.bc()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.topics[name]
}

func kickJoined(j *joined) {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// publish sends data on a joined topic; without a topic (offline) the
// item waits in the store for others' history fetches.
func (m *Messenger) publish(ctx context.Context, name string, data []byte) {
	j := m.joinedTopic(name)
	if j == nil || j.topic == nil || m.Revoked() != nil { // a revoked device publishes nothing (revoked.go)
		return
	}
	if err := j.topic.Publish(ctx, data); err != nil {
		m.log.Info("publishFailed", "err", err)
	}
}

// publishSoon publishes data on a joined topic; if the topic has no peers
// yet (we just joined it: gossipsub has not heard who else is subscribed)
// it waits for some, up to topicPeersWait, in the background. Published
// into the void, the item would reach the others only through their next
// history fetch: gossipsub never offers an item again to the peers it
// later grafts.
func (m *Messenger) publishSoon(name string, data []byte) {
	j := m.joinedTopic(name)
	if j == nil || j.topic == nil {
		return
	}
	if len(j.topic.Peers()) > 0 {
		m.publish(context.Background(), name, data)
		return
	}
	b := m.bc()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil {
		return
	}
	ctx := b.ctx
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		m.topicPeers(ctx, name)
		if ctx.Err() == nil {
			m.publish(ctx, name, data)
		}
	}()
}

// historyPeers lists the peers to ask for a topic's history: the topic's
// peers (shuffled), then the seeds (full multiaddrs) not among them.
func (m *Messenger) historyPeers(name string, seeds []string) []seedPeer {
	var out []seedPeer
	seen := map[string]bool{m.tr.PeerID(): true}
	if j := m.joinedTopic(name); j != nil && j.topic != nil {
		ps := j.topic.Peers()
		rand.Shuffle(len(ps), func(i, k int) { ps[i], ps[k] = ps[k], ps[i] })
		for _, p := range ps {
			seen[p] = true
			out = append(out, seedPeer{id: p})
		}
	}
	for _, s := range seeds {
		i := strings.LastIndex(s, "/p2p/")
		if i < 0 {
			continue
		}
		id := s[i+len("/p2p/"):]
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, seedPeer{id: id, addrs: []string{s}})
	}
	return out
}

// topicPeers returns the topic's peers, waiting up to topicPeersWait for
// gossipsub to learn some.
func (m *Messenger) topicPeers(ctx context.Context, name string) []seedPeer {
	deadline := time.Now().Add(topicPeersWait)
	for {
		ps := m.historyPeers(name, nil)
		if len(ps) > 0 || time.Now().After(deadline) {
			return ps
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type seedPeer struct {
	id    string
	addrs []string
}

// fetchHistory asks one peer for a topic's items.
func (m *Messenger) fetchHistory(ctx context.Context, p seedPeer, req *wirepb.HistoryRequest) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	if len(p.addrs) > 0 {
		m.tr.AddAddrs(p.id, p.addrs)
	}
	s, err := m.tr.OpenStream(ctx, p.id, ProtocolHistory)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(historyTimeout))
	req.Version = wire.Version
	if err := wire.WriteFrame(s, wire.Marshal(req)); err != nil {
		_ = s.Reset()
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		return nil, err
	}
	var items [][]byte
	size := 0
	for len(items) < int(req.Limit) {
		b, err := wire.ReadFrame(s)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = s.Reset()
			return items, err
		}
		if size += len(b); size > historyMaxBytes {
			_ = s.Reset()
			return items, errHistoryTooLarge
		}
		items = append(items, b)
	}
	return items, nil
}

// handleHistory serves /samizdat/history/1: a request frame, then one
// frame per item, then EOF. Unknown topics get an empty answer (we do not
// say whether we know them).
func (m *Messenger) handleHistory(s p2p.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(historyTimeout))
	b, err := wire.ReadFrame(s)
	if err != nil {
		_ = s.Reset()
		return
	}
	req, err := wire.ParseHistoryRequest(b)
	if err != nil {
		m.log.Info("historyRequestRejected", "peer", shortPeer(s.RemotePeer()), "err", err)
		_ = s.Reset()
		return
	}
	if !m.bc().rate.allow(s.RemotePeer()) {
		m.log.Debug("historyRequestLimited", "peer", shortPeer(s.RemotePeer()))
		_ = s.Reset()
		return
	}
	limit := min(int(req.Limit), historyPageSize)
	j := m.joinedTopic(req.Topic)
	var items [][]byte
	if j != nil {
		ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
		defer cancel()
		since := time.UnixMilli(req.SinceUnixMs)
		_ = m.st.View(ctx, func(tx *store.Tx) error {
			switch {
			case j.channel != nil:
				ps, err := tx.ChannelPosts(j.channel, req.FromSeq, limit)
				for _, p := range ps {
					if !p.At.Before(since) {
						items = append(items, p.Post)
					}
				}
				return err
			case j.group != nil:
				ms, err := tx.RecentGroupMessages(j.group, since, limit)
				for _, gm := range ms {
					items = append(items, gm.Raw)
				}
				return err
			}
			return nil
		})
	}
	tamper := m.bc().tamper
	size := 0
	for _, it := range items {
		if tamper != nil {
			it = tamper(it)
		}
		if size += len(it); size > historyMaxBytes {
			return // what the asker would not read
		}
		if err := wire.WriteFrame(s, it); err != nil {
			_ = s.Reset()
			return
		}
	}
}
