package p2p

import (
	"crypto/rand"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GenerateKey returns a new Ed25519 libp2p private key, marshalled with
// crypto.MarshalPrivateKey (the form Config.PrivateKey takes), and its peer id.
func GenerateKey() (priv []byte, peerID string, err error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("p2p: generate key: %w", err)
	}
	priv, err = crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, "", fmt.Errorf("p2p: marshal key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, "", fmt.Errorf("p2p: peer id from key: %w", err)
	}
	return priv, id.String(), nil
}

// PeerIDFromKey returns the peer id of a marshalled libp2p private key.
func PeerIDFromKey(priv []byte) (string, error) {
	sk, err := unmarshalKey(priv)
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return id.String(), nil
}

func unmarshalKey(priv []byte) (crypto.PrivKey, error) {
	if len(priv) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadKey)
	}
	sk, err := crypto.UnmarshalPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return sk, nil
}
