package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// Services in the DHT: a node that offers one (a relay offering mailboxes)
// announces itself as a provider of the service's key; others find it with
// FindProviders. Keys are sha256("samizdat/service/" + name) as raw CIDs,
// so they live in our own DHT's provider records and name no user.

// serviceKey returns the DHT key of a service name.
func serviceKey(name string) cid.Cid {
	sum := sha256.Sum256([]byte("samizdat/service/" + name))
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		panic(fmt.Sprintf("p2p: service key: %v", err)) // a fixed-size digest always encodes
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// Provide announces this node as a provider of the named service. It
// returns ErrNoDHT when the DHT is disabled, and an error when no peer
// took the record (e.g. the routing table is still empty).
func (n *Node) Provide(ctx context.Context, service string) error {
	if n.dht == nil {
		return ErrNoDHT
	}
	n.awaitRoutingTable(ctx)
	if err := n.dht.Provide(ctx, serviceKey(service), true); err != nil {
		return fmt.Errorf("p2p: provide %s: %w", service, err)
	}
	return nil
}

// Provider is a peer that offers a service, with its addresses as full
// multiaddrs ending in /p2p/<id>.
type Provider struct {
	PeerID string
	Addrs  []string
}

// FindProviders returns up to limit other peers that provide the named
// service (in the order the DHT found them). It returns ErrNoDHT when the
// DHT is disabled and ErrNotFound when it found none.
func (n *Node) FindProviders(ctx context.Context, service string, limit int) ([]Provider, error) {
	if n.dht == nil {
		return nil, ErrNoDHT
	}
	if limit <= 0 {
		return nil, errors.New("p2p: FindProviders: limit must be positive")
	}
	n.awaitRoutingTable(ctx)
	self := n.host.ID()
	var out []Provider
	// Ask for one more: this node may be among them.
	for ai := range n.dht.FindProvidersAsync(ctx, serviceKey(service), limit+1) {
		if ai.ID == self || len(out) == limit {
			continue
		}
		addrs := ai.Addrs
		if len(addrs) == 0 {
			addrs = n.host.Peerstore().Addrs(ai.ID)
		}
		if n.cfg.LoopbackOnly {
			addrs = loopbackAddrs(addrs)
		}
		if len(addrs) == 0 {
			continue
		}
		n.host.Peerstore().AddAddrs(ai.ID, addrs, ContactAddrTTL)
		out = append(out, Provider{PeerID: ai.ID.String(), Addrs: p2pAddrs(ai.ID, addrs)})
	}
	if len(out) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: no provider of %s", ErrNotFound, service)
	}
	return out, nil
}
