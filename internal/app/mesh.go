package app

import (
	"log/slog"
	"net/netip"
	"strings"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/mesh"
)

// mdnsWanted reports whether LAN discovery should run: asked for, not a
// loopback-only node, and listening on some address beyond loopback (mDNS
// announcing loopback addresses would only tell the LAN we exist).
func mdnsWanted(o Options, listen []string) bool {
	if !o.MDNS || o.LoopbackOnly {
		return false
	}
	for _, a := range listen {
		if !loopbackMultiaddr(a) {
			return true
		}
	}
	return false
}

// loopbackMultiaddr reports whether a listen multiaddr is on loopback
// (/ip4/127.x or /ip6/::1).
func loopbackMultiaddr(a string) bool {
	parts := strings.Split(a, "/")
	if len(parts) < 3 || (parts[1] != "ip4" && parts[1] != "ip6") {
		return false
	}
	ip, err := netip.ParseAddr(parts[2])
	return err == nil && ip.IsLoopback()
}

func (n *Node) startMesh(o Options, log *slog.Logger) error {
	cfg := o.MeshConfig
	cfg.Transport, cfg.Depositor, cfg.Store, cfg.Logger = n.P2P, anonOpener{n.P2P}, n.Store, log.With("component", "mesh")
	m, err := mesh.New(cfg)
	if err != nil {
		return err
	}
	n.Mesh = m
	m.Start()
	return nil
}

func (n *Node) meshStatus() *apiclient.MeshStatus {
	if n.Mesh == nil {
		return nil
	}
	s := n.Mesh.Stats()
	return &apiclient.MeshStatus{
		MDNS: n.P2P != nil && n.P2P.MDNSEnabled(), Carried: s.Carried, CarriedBytes: s.CarriedBytes,
		Own: s.Own, Receipts: s.Receipts, Delivered: s.Delivered, HandedToHosts: s.HandedToHosts,
		Peers: s.Peers, Syncs: s.Syncs, BytesSent: s.BytesSent, BytesReceived: s.BytesReceived,
	}
}
