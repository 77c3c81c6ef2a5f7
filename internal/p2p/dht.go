package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
)

// Contact-card records in the DHT.
const (
	// CardNamespace prefixes every contact-card key: PutValue and GetValue
	// accept only keys "/samizdat-card/<name>".
	CardNamespace = "/" + cardNamespaceName + "/"
	// MaxCardSize is the largest contact-card record the DHT accepts.
	MaxCardSize = 8 << 10
	// CardVersionSize is the leading big-endian version of a card record;
	// among several records for one key the highest version wins.
	CardVersionSize = 8

	cardNamespaceName = "samizdat-card"
)

// FindPeer looks a peer up in the DHT and returns its addresses as full
// multiaddrs ending in /p2p/<id>. It returns ErrNoDHT when the DHT is
// disabled and ErrNotFound when nobody knows the peer.
func (n *Node) FindPeer(ctx context.Context, peerID string) ([]string, error) {
	if n.dht == nil {
		return nil, ErrNoDHT
	}
	id, err := n.remotePeer(peerID)
	if err != nil {
		return nil, err
	}
	n.awaitRoutingTable(ctx)
	ai, err := n.dht.FindPeer(ctx, id)
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return nil, fmt.Errorf("%w: peer %s", ErrNotFound, short(peerID))
		}
		return nil, fmt.Errorf("p2p: find peer %s: %w", short(peerID), err)
	}
	if conns := n.host.Network().ConnsToPeer(id); len(conns) > 0 {
		// Connected (the DHT then answers from our own peerstore): until
		// identify has run on the connection, that holds only the
		// address we reached it at, not all it listens on.
		if ids, ok := n.host.(interface{ IDService() identify.IDService }); ok {
			for _, c := range conns {
				select {
				case <-ids.IDService().IdentifyWait(c):
				case <-ctx.Done():
				}
			}
			if addrs := n.host.Peerstore().Addrs(id); len(addrs) > 0 {
				ai.Addrs = addrs
			}
		}
	}
	if len(ai.Addrs) == 0 {
		// Connected, but the peerstore has nothing: use the live connections.
		for _, c := range n.host.Network().ConnsToPeer(id) {
			ai.Addrs = append(ai.Addrs, c.RemoteMultiaddr())
		}
	}
	if len(ai.Addrs) == 0 {
		return nil, fmt.Errorf("%w: peer %s: no addresses", ErrNotFound, short(peerID))
	}
	return p2pAddrs(ai.ID, ai.Addrs), nil
}

// routingTableWait bounds how long a lookup waits for a freshly connected
// node's routing table: peers enter it only once identify has run.
const routingTableWait = 3 * time.Second

// awaitRoutingTable waits, briefly, until the DHT routing table has a peer
// when the node is connected to somebody (or has bootstrap peers) but the
// table is still empty (just after start), so the first lookup does not
// fail, or answer from the local store alone, for nothing.
func (n *Node) awaitRoutingTable(ctx context.Context) {
	// Nobody to wait for: not connected, and no bootstrap peer on its way.
	if n.dht.RoutingTable().Size() > 0 || (len(n.host.Network().Peers()) == 0 && len(n.cfg.BootstrapPeers) == 0) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, routingTableWait)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for n.dht.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PutValue stores a contact-card record under key ("/samizdat-card/<name>")
// on the DHT peers closest to it. The value must start with its 8-byte
// big-endian version and be at most MaxCardSize bytes.
func (n *Node) PutValue(ctx context.Context, key string, value []byte) error {
	if n.dht == nil {
		return ErrNoDHT
	}
	if err := checkCardKey(key); err != nil {
		return err
	}
	if err := validateCard(value); err != nil {
		return err
	}
	n.awaitRoutingTable(ctx)
	if err := n.dht.PutValue(ctx, key, value); err != nil {
		return fmt.Errorf("p2p: dht put: %w", err)
	}
	return nil
}

// GetValue fetches the best (highest-version) contact-card record for key.
// It returns ErrNotFound when no peer has one.
func (n *Node) GetValue(ctx context.Context, key string) ([]byte, error) {
	if n.dht == nil {
		return nil, ErrNoDHT
	}
	if err := checkCardKey(key); err != nil {
		return nil, err
	}
	n.awaitRoutingTable(ctx)
	v, err := n.dht.GetValue(ctx, key)
	if err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("p2p: dht get: %w", err)
	}
	return v, nil
}

func checkCardKey(key string) error {
	if !strings.HasPrefix(key, CardNamespace) || len(key) == len(CardNamespace) {
		return fmt.Errorf("%w: %q does not start with %s<name>", ErrBadRecordKey, key, CardNamespace)
	}
	return nil
}

func validateCard(value []byte) error {
	if len(value) > MaxCardSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBadRecord, len(value), MaxCardSize)
	}
	if len(value) < CardVersionSize {
		return fmt.Errorf("%w: %d bytes, shorter than its %d-byte version", ErrBadRecord, len(value), CardVersionSize)
	}
	return nil
}

// cardValidator is the DHT validator for the /samizdat-card/ namespace. It
// checks only size: cards are signed and checked by the layer above.
type cardValidator struct{}

var _ record.Validator = cardValidator{}

func (cardValidator) Validate(key string, value []byte) error {
	if err := checkCardKey(key); err != nil {
		return err
	}
	return validateCard(value)
}

// Select prefers the highest version; ties go to the greater bytes, so every
// node picks the same record.
func (cardValidator) Select(_ string, values [][]byte) (int, error) {
	best := -1
	for i, v := range values {
		if validateCard(v) != nil {
			continue
		}
		if best < 0 || cardLess(values[best], v) {
			best = i
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("%w: no valid record among %d", ErrBadRecord, len(values))
	}
	return best, nil
}

func cardLess(a, b []byte) bool {
	va := binary.BigEndian.Uint64(a[:CardVersionSize])
	vb := binary.BigEndian.Uint64(b[:CardVersionSize])
	if va != vb {
		return va < vb
	}
	return bytes.Compare(a, b) < 0
}
