package p2p

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Bootstrap retry schedule: the first retry after bootstrapMinBackoff,
// doubling (with jitter) up to bootstrapMaxBackoff. Connected peers are
// re-checked every bootstrapCheckInterval and redialled when lost.
const (
	bootstrapMinBackoff    = time.Second
	bootstrapMaxBackoff    = 5 * time.Minute
	bootstrapCheckInterval = 30 * time.Second
)

type bootPeer struct {
	info     peer.AddrInfo
	backoff  time.Duration
	next     time.Time
	failures int
}

// bootstrap keeps the node connected to its bootstrap peers for its whole
// life. A failing peer is logged once at Info (then at Debug) so a down
// bootstrap node does not flood the log.
func (n *Node) bootstrap(infos []peer.AddrInfo) {
	defer n.wg.Done()
	peers := make([]*bootPeer, 0, len(infos))
	for _, ai := range infos {
		if ai.ID != n.host.ID() {
			peers = append(peers, &bootPeer{info: ai})
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	refreshed := false
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		var wg sync.WaitGroup
		for _, bp := range peers {
			if now.Before(bp.next) || n.host.Network().Connectedness(bp.info.ID) == network.Connected {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.dialBootstrap(bp)
			}()
		}
		wg.Wait()

		// Seed the DHT routing table once we know somebody.
		if n.dht != nil && !refreshed && len(n.host.Network().Peers()) > 0 {
			refreshed = true
			n.dht.RefreshRoutingTable()
		}

		wait := bootstrapCheckInterval
		now = time.Now()
		for _, bp := range peers {
			if d := bp.next.Sub(now); bp.failures > 0 && d < wait {
				wait = max(d, 0)
			}
		}
		timer.Reset(wait)
	}
}

func (n *Node) dialBootstrap(bp *bootPeer) {
	ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
	defer cancel()
	err := n.host.Connect(ctx, bp.info)
	if n.ctx.Err() != nil {
		return
	}
	id := short(bp.info.ID.String())
	if err == nil {
		if bp.failures > 0 {
			n.log.Info("bootstrapPeerConnected", "peer", id, "afterFailures", bp.failures)
		} else {
			n.log.Debug("bootstrapPeerConnected", "peer", id)
		}
		bp.failures, bp.backoff, bp.next = 0, 0, time.Time{}
		return
	}
	bp.failures++
	switch {
	case bp.backoff == 0:
		bp.backoff = bootstrapMinBackoff
	default:
		bp.backoff = min(2*bp.backoff, bootstrapMaxBackoff)
	}
	// ±20 % jitter so many nodes started together do not retry in lockstep.
	jitter := time.Duration(rand.Int64N(int64(bp.backoff)/5*2+1)) - bp.backoff/5
	bp.next = time.Now().Add(bp.backoff + jitter)
	if bp.failures == 1 {
		n.log.Info("bootstrapPeerUnreachable", "peer", id, "retryIn", bp.backoff, "err", err)
	} else {
		n.log.Debug("bootstrapPeerUnreachable", "peer", id, "failures", bp.failures, "retryIn", bp.backoff, "err", err)
	}
}
