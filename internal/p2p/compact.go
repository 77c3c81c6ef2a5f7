package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Compact forms of addresses and peer ids, for links that must stay short
// (identity's short invites): the binary multiaddr (/ip4/…/tcp/… is 8
// bytes) and the raw Ed25519 key behind a peer id (32 bytes, not 38).

// CompactAddr returns the binary form of a transport multiaddr; a trailing
// /p2p/<id> is dropped (the peer is named separately).
func CompactAddr(s string) ([]byte, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadAddr, s, err)
	}
	if transport, id := peer.SplitAddr(m); id != "" {
		m = transport
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %q has no transport part", ErrBadAddr, s)
	}
	return m.Bytes(), nil
}

// ExpandAddr returns the text form of a binary multiaddr from CompactAddr.
func ExpandAddr(b []byte) (string, error) {
	m, err := ma.NewMultiaddrBytes(b)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadAddr, err)
	}
	return m.String(), nil
}

// PeerIDPublicKey returns the raw Ed25519 public key of a peer id (every
// samizdat node's key is Ed25519, see GenerateKey).
func PeerIDPublicKey(peerID string) ([]byte, error) {
	id, err := parsePeerID(peerID)
	if err != nil {
		return nil, err
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPeerID, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: not an Ed25519 key", ErrBadPeerID)
	}
	return pk.Raw()
}

// PeerIDFromPublicKey returns the peer id of a raw Ed25519 public key.
func PeerIDFromPublicKey(raw []byte) (string, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPeerID, err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPeerID, err)
	}
	return id.String(), nil
}
