package app

// Censorship-resistant transports and the node's network memory: which
// entry points it reached (peer cache) and which transports worked, both
// kept in the encrypted store and given back to the network at the next
// start (DESIGN §6, §7).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// TransportOptions choose how the node reaches the network where it is
// censored (the flags of `samizdat up`). The zero value uses TCP, QUIC and
// WebSocket directly.
type TransportOptions struct {
	// TLSName is the server name of /tls/ws listeners and the SNI sent.
	TLSName string
	// ECH turns on Encrypted Client Hello for /tls/ws (p2p.Config.ECH):
	// the key is made once and kept (blobECH, or DIR/ech.pem for a relay);
	// a key kept from an earlier run is still accepted when ECH is off.
	ECH bool
	// ECHName is the cover (public) name of the ECH config. Zero: the
	// kept key's, else one of p2p's defaults.
	ECHName string
	// SOCKS5 is a proxy (host:port) for every dial (TCP only then).
	SOCKS5 string
	// PT maps a pluggable-transport method to its binary, e.g.
	// "obfs4" → "/usr/bin/obfs4proxy".
	PT map[string]string
	// Bridges are bridge lines ("obfs4 IP:PORT PEERID cert=… iat-mode=0").
	Bridges []string
	// ServePT are methods this node serves, as "METHOD@IP:PORT".
	ServePT []string
	// STUN are STUN servers (IP:PORT) for WebRTC; none by default.
	STUN []string
}

// Store blobs of the network memory.
const (
	blobPeerCache  = "p2p.peers"      // entry points, one multiaddr a line
	blobTransports = "p2p.transports" // transports that worked, best first
	blobTLS        = "p2p.tls"        // TLS identity: certificate, key, site seed (p2p.NewTLSIdentity)
	blobECH        = "p2p.ech"        // Encrypted Client Hello key and config (p2p.NewECH)
	blobECHPrev    = "p2p.ech.prev"   // the ECH key before it, still accepted
)

// Network memory bounds: how often it is saved while the node runs, and how
// many cached addresses are kept.
const (
	netMemoryInterval = 15 * time.Second
	peerCacheLines    = 64
)

// transportConfig fills the network config from o and the network memory.
func (n *Node) transportConfig(ctx context.Context, pc *p2p.Config, o TransportOptions) error {
	if err := o.apply(pc, n.Dir); err != nil {
		return err
	}
	return n.Store.Update(ctx, func(tx *store.Tx) error {
		pc.CachedPeers = blobLines(tx, blobPeerCache)
		pc.PreferTransports = blobLines(tx, blobTransports)
		id, err := tlsIdentity(tx, o.TLSName, time.Now())
		if err != nil {
			return err
		}
		pc.TLSIdentity = id
		cur, _ := tx.Blob(blobECH)
		prev, _ := tx.Blob(blobECHPrev)
		k, err := echKeys(cur, prev, o.ECH, o.ECHName)
		if err != nil {
			return err
		}
		pc.ECH, pc.ECHAccept = k.use, k.accept
		if k.save == nil {
			return nil
		}
		if len(cur) > 0 {
			if err := tx.PutBlob(blobECHPrev, cur); err != nil {
				return err
			}
		}
		return tx.PutBlob(blobECH, k.save)
	})
}

// echKeySet is what echKeys decides: the key to advertise (nil: ECH
// off), those only accepted, and a new current key to keep (the current
// one then becomes the previous), or nil.
type echKeySet struct {
	use, save []byte
	accept    [][]byte
}

// echKeys chooses the ECH keys of a node from the kept current and
// previous ones: with ECH on, the current key (a new one the first time or
// for another cover name), and the previous one accepted; with ECH off,
// none advertised but both kept ones accepted, since contacts hold our
// addresses (and so an ECH config) for up to p2p.ContactAddrTTL.
func echKeys(cur, prev []byte, on bool, name string) (echKeySet, error) {
	var k echKeySet
	valid := func(b []byte) bool { _, err := p2p.ECHPublicName(b); return len(b) > 0 && err == nil }
	if !on {
		for _, b := range [][]byte{cur, prev} {
			if valid(b) {
				k.accept = append(k.accept, b)
			}
		}
		return k, nil
	}
	key, changed, err := keepECH(cur, name)
	if err != nil {
		return k, err
	}
	k.use = key
	if changed {
		k.save = key
		prev = cur
	}
	if valid(prev) {
		k.accept = [][]byte{prev}
	}
	return k, nil
}

// keepECH returns old, or a new ECH key when old is missing, malformed or
// for another cover name than name. The key is kept: its config travels
// in the node's addresses (cards, invites, the DHT) and a new one makes
// those peers hold stale ones until they see a fresh card.
func keepECH(old []byte, name string) ([]byte, bool, error) {
	if len(old) > 0 {
		if pub, err := p2p.ECHPublicName(old); err == nil && (name == "" || name == pub) {
			return old, false, nil
		}
	}
	key, err := p2p.NewECH(name)
	return key, err == nil, err
}

// fileECH is echKeys for a relay: the keys live in dir/ech.pem and
// dir/ech.prev.pem (0600).
func fileECH(pc *p2p.Config, dir string, on bool, name string) error {
	curP, prevP := filepath.Join(dir, "ech.pem"), filepath.Join(dir, "ech.prev.pem")
	cur, _ := os.ReadFile(curP)
	prev, _ := os.ReadFile(prevP)
	k, err := echKeys(cur, prev, on, name)
	if err != nil {
		return err
	}
	pc.ECH, pc.ECHAccept = k.use, k.accept
	if k.save == nil {
		return nil
	}
	if len(cur) > 0 {
		if err := os.WriteFile(prevP, cur, 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(curP, k.save, 0o600)
}

// tlsIdentity returns the node's kept TLS identity (its server name,
// certificate and site: the same across restarts, so that a node does not
// look like a name generator), making one for name (or, without one, for
// a name drawn from p2p.TLSNames) the first time, when name changes, and
// when the certificate is due for renewal, keeping the site.
func tlsIdentity(tx *store.Tx, name string, now time.Time) ([]byte, error) {
	old, _ := tx.Blob(blobTLS)
	id, changed, err := renewTLSIdentity(old, name, now)
	if err != nil || !changed {
		return id, err
	}
	return id, tx.PutBlob(blobTLS, id)
}

// fileTLSIdentity is tlsIdentity for a relay, which has no profile store:
// the identity lives in dir/tls.pem (0600).
func fileTLSIdentity(dir, name string, now time.Time) ([]byte, error) {
	p := filepath.Join(dir, "tls.pem")
	old, _ := os.ReadFile(p)
	id, changed, err := renewTLSIdentity(old, name, now)
	if err != nil || !changed {
		return id, err
	}
	return id, os.WriteFile(p, id, 0o600)
}

// renewTLSIdentity returns old, or a new identity when old is missing, for
// another name, or due for renewal (keeping its site seed).
func renewTLSIdentity(old []byte, name string, now time.Time) ([]byte, bool, error) {
	var seed []byte
	if len(old) > 0 {
		oldName, notAfter, oldSeed, err := p2p.TLSIdentityInfo(old)
		if err == nil {
			seed = oldSeed
			if name == "" {
				name = oldName
			}
			if name == oldName && notAfter.Sub(now) > p2p.CertRenewBefore {
				return old, false, nil
			}
		}
	}
	if name == "" {
		name = p2p.PickTLSName()
	}
	id, err := p2p.NewTLSIdentity(name, seed, now)
	return id, err == nil, err
}

func blobLines(tx *store.Tx, name string) []string {
	b, err := tx.Blob(name)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\n")
}

// apply puts the options into a network config; PT state lives in dir/pt.
func (o TransportOptions) apply(pc *p2p.Config, dir string) error {
	pc.TLSName, pc.SOCKS5, pc.STUN = o.TLSName, o.SOCKS5, o.STUN
	pc.PT = p2p.PTConfig{Binary: o.PT, Serve: o.ServePT, StateDir: filepath.Join(dir, "pt")}
	for _, l := range o.Bridges {
		b, err := p2p.ParseBridge(l)
		if err != nil {
			return fmt.Errorf("--bridge: %w", err)
		}
		pc.PT.Bridges = append(pc.PT.Bridges, b)
	}
	return nil
}

// Bridges returns the bridge lines of the pluggable transports the relay
// serves (RelayOptions.Transports.ServePT).
func (r *Relay) Bridges() []string { return r.P2P.Bridges() }

// startNetMemory saves the network memory every netMemoryInterval until
// ctx ends (Close saves it a last time).
func (n *Node) startNetMemory(ctx context.Context) {
	n.memWG.Add(1)
	go func() {
		defer n.memWG.Done()
		t := time.NewTicker(netMemoryInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.saveNetMemory()
			}
		}
	}()
}

// saveNetMemory stores the peer cache (this run's entry points first, then
// the earlier ones: a run that reached nobody does not forget the network)
// and the transports that worked.
func (n *Node) saveNetMemory() {
	if n.P2P == nil || n.Store == nil {
		return
	}
	fresh, worked := n.P2P.PeerCache(), n.P2P.WorkedTransports()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n.Store.Update(ctx, func(tx *store.Tx) error {
		lines := fresh
		for _, l := range blobLines(tx, blobPeerCache) {
			if !slices.Contains(lines, l) {
				lines = append(lines, l)
			}
		}
		lines = lines[:min(len(lines), peerCacheLines)]
		if err := tx.PutBlob(blobPeerCache, []byte(strings.Join(lines, "\n"))); err != nil {
			return err
		}
		if len(worked) == 0 {
			return nil
		}
		return tx.PutBlob(blobTransports, []byte(strings.Join(worked, "\n")))
	})
	if err != nil {
		n.log.Warn("saveNetMemoryFailed", "err", err)
	}
}

// netStatus adds the transports, bridges and peer cache to a status.
func (n *Node) netStatus(st *apiclient.Status) {
	for _, u := range n.P2P.Transports() {
		st.Transports = append(st.Transports, apiclient.Transport{Name: u.Name, Open: u.Open, LastOK: u.LastOK})
	}
	st.TransportOrder = n.P2P.WorkedTransports()
	st.Bridges = n.P2P.Bridges()
	seen := map[string]bool{}
	for _, a := range n.P2P.PeerCache() {
		if i := strings.LastIndex(a, "/p2p/"); i >= 0 {
			seen[a[i:]] = true
		}
	}
	st.PeerCache = len(seen)
}
