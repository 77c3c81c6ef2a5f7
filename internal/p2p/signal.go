package p2p

// WebRTC signalling (issue 15): the offer and answer of a WebRTC
// connection (package webrtcpt) travel over a libp2p stream, inside an
// encrypted connection the node already has: to the peer itself if
// connected (through a relay, say), else through any connected peer that
// is connected to it too, which forwards them once (a broker, the way
// Snowflake's works). The broker learns who wants to reach whom, as a
// relay does; it sees the two SDPs (addresses and DTLS fingerprints), not
// what the connection then carries.
//
// A request is a kind byte, for kindForward the target's peer id (uvarint
// length, bytes), then the offer (uvarint length, bytes); the answer is a
// status byte, then for sigOK the answer SDP (uvarint length, bytes).

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/samizdat-im/samizdat/internal/p2p/webrtcpt"
)

// ProtoSignal is the signalling protocol (inside the encrypted connection,
// never on the wire in the clear).
const ProtoSignal = "/samizdat/signal/1"

const (
	kindForMe   = 1 // answer it yourself
	kindForward = 2 // forward to the target (one hop)

	sigOK      = 0
	sigNoRoute = 1 // the broker is not connected to the target
	sigFailed  = 2 // the target could not answer (not listening on WebRTC…)

	signalTimeout  = 10 * time.Second
	signalWait     = 5 * time.Second // for a first broker to connect
	signalBrokers  = 8               // connected peers asked to forward, at most
	signalHandlers = 16              // signalling streams served at once
)

var errNoRoute = errors.New("p2p: no signalling route to the peer")

// startSignalling serves ProtoSignal and gives the WebRTC transport its
// signaller.
func (n *Node) startSignalling() {
	if n.wrtc == nil {
		return
	}
	n.wrtc.SetSignaller(n.signalOffer)
	sem := make(chan struct{}, signalHandlers)
	n.host.SetStreamHandler(protocol.ID(ProtoSignal), func(s network.Stream) {
		select {
		case sem <- struct{}{}:
		default:
			_ = s.Reset()
			return
		}
		defer func() { <-sem }()
		n.serveSignal(s)
	})
}

func (n *Node) serveSignal(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(2 * signalTimeout))
	ctx, cancel := context.WithTimeout(n.ctx, 2*signalTimeout)
	defer cancel()
	_, target, offer, err := readSignalRequest(bufio.NewReader(s), n.host.ID())
	if err != nil {
		_ = s.Reset()
		return
	}
	var answer string
	switch {
	case target == n.host.ID():
		answer, err = n.wrtc.Answer(ctx, string(offer))
		if err != nil {
			n.log.Debug("signalAnswer", "err", err)
			_, _ = s.Write([]byte{sigFailed})
			return
		}
	case target == s.Conn().RemotePeer() || n.host.Network().Connectedness(target) == network.NotConnected:
		_, _ = s.Write([]byte{sigNoRoute})
		return
	default:
		answer, err = n.signalVia(ctx, target, kindForMe, target, string(offer))
		if err != nil {
			st := byte(sigFailed)
			if errors.Is(err, errNoRoute) {
				st = sigNoRoute
			}
			_, _ = s.Write([]byte{st})
			return
		}
	}
	_, _ = s.Write(append([]byte{sigOK}, chunk([]byte(answer))...))
}

// signalOffer is the WebRTC transport's signaller: the offer goes to p
// directly if connected, else through connected peers, one at a time.
// Right after start no broker may be connected yet: then it waits (up to
// signalWait) for peers to connect, and asks them.
func (n *Node) signalOffer(ctx context.Context, p peer.ID, offer string) (string, error) {
	sub, err := n.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return "", err
	}
	defer sub.Close()
	wait := time.NewTimer(signalWait)
	defer wait.Stop()
	var errs []error
	tried := map[peer.ID]bool{}
	for {
		if !tried[p] && n.host.Network().Connectedness(p) != network.NotConnected {
			tried[p] = true
			a, err := n.signalVia(ctx, p, kindForMe, p, offer)
			if err == nil {
				return a, nil
			}
			errs = append(errs, err)
		}
		for _, b := range n.host.Network().Peers() {
			if b == p || tried[b] || len(tried) > signalBrokers {
				continue
			}
			if ctx.Err() != nil {
				break
			}
			tried[b] = true
			a, err := n.signalVia(ctx, b, kindForward, p, offer)
			if err == nil {
				n.log.Debug("signalledVia", "broker", short(b.String()), "peer", short(p.String()))
				return a, nil
			}
			errs = append(errs, err)
		}
		select {
		case <-sub.Out():
			continue // someone connected: ask them
		case <-wait.C:
		case <-ctx.Done():
		}
		break
	}
	if len(errs) == 0 {
		return "", errNoRoute
	}
	return "", fmt.Errorf("%w: %w", errNoRoute, errors.Join(errs...))
}

// signalVia sends one signalling request to peer via (never dialling it)
// and reads the answer.
func (n *Node) signalVia(ctx context.Context, via peer.ID, kind byte, target peer.ID, offer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	ctx = network.WithNoDial(ctx, "signal")
	ctx = network.WithAllowLimitedConn(ctx, "signal")
	s, err := n.host.NewStream(ctx, via, protocol.ID(ProtoSignal))
	if err != nil {
		return "", err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	req := []byte{kind}
	if kind == kindForward {
		req = append(req, chunk([]byte(target))...)
	}
	req = append(req, chunk([]byte(offer))...)
	if _, err := s.Write(req); err != nil {
		_ = s.Reset()
		return "", err
	}
	_ = s.CloseWrite()
	r := bufio.NewReader(s)
	st, err := r.ReadByte()
	if err != nil {
		return "", err
	}
	switch st {
	case sigOK:
	case sigNoRoute:
		return "", errNoRoute
	default:
		return "", fmt.Errorf("p2p: signalling through %s: the peer could not answer", short(via.String()))
	}
	a, err := readChunk(r, webrtcpt.MaxSDP)
	if err != nil {
		return "", err
	}
	return string(a), nil
}

// readSignalRequest decodes a request; target is self for kindForMe.
func readSignalRequest(r *bufio.Reader, self peer.ID) (kind byte, target peer.ID, offer []byte, err error) {
	if kind, err = r.ReadByte(); err != nil {
		return 0, "", nil, err
	}
	target = self
	switch kind {
	case kindForMe:
	case kindForward:
		b, err := readChunk(r, 128)
		if err != nil {
			return 0, "", nil, err
		}
		if target, err = peer.IDFromBytes(b); err != nil {
			return 0, "", nil, err
		}
	default:
		return 0, "", nil, fmt.Errorf("p2p: signalling request of kind %d", kind)
	}
	offer, err = readChunk(r, webrtcpt.MaxSDP)
	return kind, target, offer, err
}

func chunk(b []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

func readChunk(r *bufio.Reader, limit int) ([]byte, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if l > uint64(limit) {
		return nil, fmt.Errorf("p2p: signalling message of %d bytes", l)
	}
	b := make([]byte, l)
	_, err = io.ReadFull(r, b)
	return b, err
}
