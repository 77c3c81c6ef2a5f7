package p2p

import (
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
)

// eventBufSize is the event subscription's buffer: a burst of connections
// must not block libp2p's event bus.
const eventBufSize = 256

// OnConnected registers f to be called with the peer id whenever the node
// goes from not connected to connected with a peer (the first connection;
// extra parallel connections to an already connected peer do not call it
// again, a reconnection after a disconnect does). Each call runs in its own
// goroutine, so f may block briefly or call back into the node; Close waits
// for running calls, so f must return once the node is closed.
func (n *Node) OnConnected(f func(peerID string)) {
	n.mu.Lock()
	n.onConnected = append(n.onConnected, f)
	n.mu.Unlock()
}

func (n *Node) dispatchEvents() {
	defer n.wg.Done()
	for e := range n.sub.Out() {
		ev, ok := e.(event.EvtPeerConnectednessChanged)
		if !ok || ev.Connectedness != network.Connected {
			continue
		}
		if n.ctx.Err() != nil {
			continue // drain until the subscription closes
		}
		n.log.Debug("peerConnected", "peer", short(ev.Peer.String()))
		n.mu.Lock()
		fs := append([]func(string){}, n.onConnected...)
		n.mu.Unlock()
		id := ev.Peer.String()
		for _, f := range fs {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				f(id)
			}()
		}
	}
}
