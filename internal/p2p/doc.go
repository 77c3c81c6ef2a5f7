// Package p2p is samizdat's network layer and the only package in the project
// that imports go-libp2p. It hides libp2p behind plain types — peer ids and
// multiaddrs are strings, streams are a small interface — so that the
// messenger, mailbox and CLI never depend on libp2p directly (DESIGN.md §3, §6).
//
// A Node is a libp2p host with TCP, QUIC-v1 and WebSocket transports, Noise
// security, yamux multiplexing, a resource manager and a connection manager,
// plus an optional private Kademlia DHT that speaks the "/samizdat" protocol
// prefix.
//
// What this package must never do:
//   - dial libp2p's or IPFS's public bootstrap peers, or join the public IPFS
//     DHT: the only peers dialled at start are Config.BootstrapPeers, and the
//     DHT always uses the "/samizdat" protocol prefix;
//   - announce itself on the LAN (mDNS) or open ports on the router
//     (UPnP/NAT-PMP) unless the configuration explicitly asks for it: the zero
//     Config keeps both off;
//   - listen anywhere unless told to (an empty Config.ListenAddrs means
//     outbound only), or resolve DNS names (DESIGN.md §6: no DNS anywhere).
//
// Config.LoopbackOnly additionally refuses every non-loopback dial, accept and
// listen address; tests and local demos set it so a mistake cannot reach the
// network.
package p2p
