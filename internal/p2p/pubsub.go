package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

// MaxPubSubMessage is the largest message a topic carries (a channel post
// or a group message with some room for framing).
const MaxPubSubMessage = 1<<20 + 64<<10

// ErrTopicJoined is returned by Join for a topic the node has already joined.
var ErrTopicJoined = errors.New("p2p: topic already joined")

// Verdict is a topic validator's decision about one message.
type Verdict int

const (
	// Accept delivers the message and forwards it to the mesh.
	Accept Verdict = iota
	// Reject drops the message and penalises the peer that sent it
	// (forged or malformed).
	Reject
	// Ignore drops the message without penalty (a duplicate, or one we
	// cannot judge yet).
	Ignore
)

// Validator judges a message received on a topic from peer from before it
// is delivered or forwarded. It runs concurrently with other validators.
type Validator func(ctx context.Context, from string, data []byte) Verdict

// TopicMessage is one message delivered on a topic.
type TopicMessage struct {
	// From is the peer that forwarded it to us (not necessarily its
	// author: messages carry no author, see Join).
	From string
	Data []byte
	// Local reports a message this node published itself.
	Local bool
}

// Topic is a joined gossipsub topic.
type Topic struct {
	n     *Node
	name  string
	t     *pubsub.Topic
	sub   *pubsub.Subscription
	close sync.Once
}

// psQueueSize bounds the RPCs queued for each peer and the messages
// waiting for validation (gossipsub drops beyond it).
const psQueueSize = 1024

// psSubBuffer is a topic subscription's buffer. Gossipsub drops a message
// for a subscriber whose buffer is full (32 by default) and never offers
// it again; the messenger stores each message in a write transaction, so
// a burst (a busy group, alerts on a channel) outran it, and the rest
// came only with the next history fetch. At most 256 messages of
// MaxPubSubMessage (272 MiB) wait per topic, all checked by the topic's
// validator first; a group's texts are ~420 B.
const psSubBuffer = 256

// GossipParams tune gossipsub's mesh. The zero value of each field means
// the value chosen for samizdat (DefaultGossipParams); tests and the scale
// benchmarks (internal/app/benchscale.go) change them to compare.
type GossipParams struct {
	// D is the mesh degree a node aims for per topic; it grafts peers
	// below Dlo and prunes above Dhi. Dlazy is how many non-mesh peers
	// it tells of recent message ids (IHAVE) each heartbeat.
	D, Dlo, Dhi, Dlazy int
	// Heartbeat is the mesh maintenance interval (grafts, prunes, IHAVE
	// gossip, fanout expiry). An idle node's pubsub does nothing else.
	Heartbeat time.Duration
	// NoFloodPublish makes a node publish its own messages to its mesh
	// peers only instead of to every peer on the topic.
	NoFloodPublish bool
}

// DefaultGossipParams are gossipsub's parameters as samizdat runs it. They
// are go-libp2p-pubsub's defaults (D 6, Dlo 5, Dhi 12, Dlazy 6, heartbeat
// 1 s, flood publish on), measured for channels of 1,000 subscribers and
// groups of 1,000 members in docs/BENCHMARKS.md ("Scale"): a post reaches
// 1,000 nodes in ~4 hops, each node receiving it about D times.
var DefaultGossipParams = GossipParams{D: 6, Dlo: 5, Dhi: 12, Dlazy: 6, Heartbeat: time.Second}

// gossipSubParams fills the zero fields of p from DefaultGossipParams.
func (p GossipParams) gossipSubParams() pubsub.GossipSubParams {
	d := DefaultGossipParams
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	gp := pubsub.DefaultGossipSubParams()
	gp.D, gp.Dlo, gp.Dhi, gp.Dlazy = pick(p.D, d.D), pick(p.Dlo, d.Dlo), pick(p.Dhi, d.Dhi), pick(p.Dlazy, d.Dlazy)
	gp.Dscore = min(gp.Dscore, gp.D)
	gp.Dout = max(0, min(gp.Dout, gp.Dlo-1, gp.D/2-1)) // pubsub wants Dout < Dlo and Dout < D/2
	gp.HeartbeatInterval = d.Heartbeat
	if p.Heartbeat > 0 {
		gp.HeartbeatInterval = p.Heartbeat
	}
	return gp
}

// pubSub returns the node's gossipsub router, starting it on first use.
// Messages carry neither an author nor a libp2p signature (StrictNoSign):
// the transport peer id of a poster is nobody's business, and the content
// is signed by our own keys (channel owner, group sender keys). Message ids
// are a hash of the content, so the same post republished by a history
// fetch is recognised as a duplicate.
func (n *Node) pubSub() (*pubsub.PubSub, error) {
	n.psMu.Lock()
	defer n.psMu.Unlock()
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if n.ps != nil {
		return n.ps, nil
	}
	ps, err := pubsub.NewGossipSub(n.ctx, n.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string {
			h := sha256.Sum256(m.Data)
			return string(h[:])
		}),
		pubsub.WithMaxMessageSize(MaxPubSubMessage),
		pubsub.WithPeerExchange(false),
		pubsub.WithRawTracer(&n.psSent),
		pubsub.WithRawTracer(&n.psMesh),
		// The default of 32 RPCs queued per peer drops items of a burst
		// (three members posting 20 messages at once, each forwarding the
		// others'), and gossipsub never offers a dropped item again to a
		// mesh peer: it arrived only with the next history fetch.
		pubsub.WithPeerOutboundQueueSize(psQueueSize),
		pubsub.WithValidateQueueSize(psQueueSize),
		pubsub.WithGossipSubParams(n.cfg.Gossip.gossipSubParams()),
		pubsub.WithFloodPublish(!n.cfg.Gossip.NoFloodPublish && !DefaultGossipParams.NoFloodPublish),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: start gossipsub: %w", err)
	}
	n.ps = ps
	return ps, nil
}

// Join subscribes to a gossipsub topic. validate runs on every message
// received from the network before it is delivered or forwarded (nil
// accepts everything; messages we publish ourselves are validated too).
// Topic names should be derived from a secret (DESIGN §6): the name is
// visible to every peer we talk pubsub with.
func (n *Node) Join(name string, validate Validator) (*Topic, error) {
	ps, err := n.pubSub()
	if err != nil {
		return nil, err
	}
	if validate != nil {
		v := func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
			switch validate(ctx, from.String(), m.Data) {
			case Accept:
				return pubsub.ValidationAccept
			case Reject:
				return pubsub.ValidationReject
			}
			return pubsub.ValidationIgnore
		}
		if err := ps.RegisterTopicValidator(name, v); err != nil {
			return nil, fmt.Errorf("p2p: topic validator: %w", err)
		}
	}
	t, err := ps.Join(name)
	if err != nil {
		if validate != nil {
			_ = ps.UnregisterTopicValidator(name)
		}
		return nil, fmt.Errorf("%w: %w", ErrTopicJoined, err)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(psSubBuffer))
	if err != nil {
		_ = t.Close()
		if validate != nil {
			_ = ps.UnregisterTopicValidator(name)
		}
		return nil, fmt.Errorf("p2p: subscribe: %w", err)
	}
	return &Topic{n: n, name: name, t: t, sub: sub}, nil
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Publish sends data to the topic's peers.
func (t *Topic) Publish(ctx context.Context, data []byte) error {
	if err := t.t.Publish(ctx, data); err != nil {
		return fmt.Errorf("p2p: publish: %w", err)
	}
	return nil
}

// Next blocks until the next message or until ctx ends or the topic is
// closed (then it returns an error).
func (t *Topic) Next(ctx context.Context) (TopicMessage, error) {
	m, err := t.sub.Next(ctx)
	if err != nil {
		return TopicMessage{}, err
	}
	local := m.ReceivedFrom == t.n.host.ID()
	return TopicMessage{From: m.ReceivedFrom.String(), Data: m.Data, Local: local}, nil
}

// Peers returns the peers we know to be subscribed to the topic.
func (t *Topic) Peers() []string {
	ps := t.t.ListPeers()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// MeshPeers returns the peers that this node sends a topic's messages to
// as they pass (its gossipsub mesh for the topic, grafted in heartbeats).
// The topic's other peers hear of a message only as gossip (IHAVE), and
// only while they are outside the mesh: a peer grafted just after a
// message went by gets it from neither (a node whose every link was
// grafted that late misses it). Waiting for a node to be in someone's
// mesh is how a test knows that the next message reaches it.
func (n *Node) MeshPeers(topic string) []string {
	n.psMesh.mu.Lock()
	defer n.psMesh.mu.Unlock()
	out := make([]string, 0, len(n.psMesh.mesh[topic]))
	for p := range n.psMesh.mesh[topic] {
		out = append(out, p.String())
	}
	return out
}

// TopicPeers returns the peers this node knows to be subscribed to a
// topic (joined or not; none before gossipsub started).
func (n *Node) TopicPeers(topic string) []string {
	n.psMu.Lock()
	ps := n.ps
	n.psMu.Unlock()
	if ps == nil {
		return nil
	}
	var out []string
	for _, p := range ps.ListPeers(topic) {
		out = append(out, p.String())
	}
	return out
}

// Close leaves the topic: Next returns an error from then on.
func (t *Topic) Close() error {
	var err error
	t.close.Do(func() {
		t.sub.Cancel()
		if ps, perr := t.n.pubSub(); perr == nil {
			_ = ps.UnregisterTopicValidator(t.name)
		}
		err = t.t.Close()
	})
	return err
}

// PubSubBytesSent returns how many bytes of gossipsub RPCs (messages and
// control) this node has sent so far: what a topic costs a subscriber.
func (n *Node) PubSubBytesSent() int64 { return n.psSent.n.Load() }

// sentCounter is a gossipsub tracer that counts the bytes of sent RPCs.
type sentCounter struct{ n atomic.Int64 }

var _ pubsub.RawTracer = (*sentCounter)(nil)

func (c *sentCounter) SendRPC(rpc *pubsub.RPC, _ peer.ID) { c.n.Add(int64(proto.Size(&rpc.RPC))) }

// meshView is a gossipsub tracer that keeps the node's mesh, per topic.
// It is told of every graft and prune; a peer whose stream closed leaves
// every mesh (gossipsub drops it without a prune event).
type meshView struct {
	mu   sync.Mutex
	mesh map[string]map[peer.ID]bool // topic → mesh peers
}

var _ pubsub.RawTracer = (*meshView)(nil)

func (v *meshView) Graft(p peer.ID, topic string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mesh == nil {
		v.mesh = map[string]map[peer.ID]bool{}
	}
	if v.mesh[topic] == nil {
		v.mesh[topic] = map[peer.ID]bool{}
	}
	v.mesh[topic][p] = true
}

func (v *meshView) Prune(p peer.ID, topic string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.mesh[topic], p)
}

func (v *meshView) Leave(topic string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.mesh, topic)
}

func (v *meshView) OnClosedOutboundStream(p peer.ID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range v.mesh {
		delete(m, p)
	}
}

func (*meshView) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*meshView) Join(string)                                          {}
func (*meshView) ValidateMessage(*pubsub.Message)                      {}
func (*meshView) DeliverMessage(*pubsub.Message)                       {}
func (*meshView) RejectMessage(*pubsub.Message, string)                {}
func (*meshView) DuplicateMessage(*pubsub.Message)                     {}
func (*meshView) ThrottlePeer(peer.ID)                                 {}
func (*meshView) RecvRPC(*pubsub.RPC)                                  {}
func (*meshView) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshView) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*meshView) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshView) UndeliverableMessage(*pubsub.Message)                 {}

func (*sentCounter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*sentCounter) OnClosedOutboundStream(peer.ID)                       {}
func (*sentCounter) Join(string)                                          {}
func (*sentCounter) Leave(string)                                         {}
func (*sentCounter) Graft(peer.ID, string)                                {}
func (*sentCounter) Prune(peer.ID, string)                                {}
func (*sentCounter) ValidateMessage(*pubsub.Message)                      {}
func (*sentCounter) DeliverMessage(*pubsub.Message)                       {}
func (*sentCounter) RejectMessage(*pubsub.Message, string)                {}
func (*sentCounter) DuplicateMessage(*pubsub.Message)                     {}
func (*sentCounter) ThrottlePeer(peer.ID)                                 {}
func (*sentCounter) RecvRPC(*pubsub.RPC)                                  {}
func (*sentCounter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*sentCounter) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*sentCounter) UndeliverableMessage(*pubsub.Message)                 {}
