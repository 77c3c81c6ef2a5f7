package p2p

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	crypto_pb "github.com/libp2p/go-libp2p/core/crypto/pb"
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

// Ed25519Key returns the Ed25519 key inside a marshalled libp2p private
// key (the device key): identity.NewDevice certifies the device with it.
func Ed25519Key(priv []byte) (ed25519.PrivateKey, error) {
	sk, err := unmarshalKey(priv)
	if err != nil {
		return nil, err
	}
	raw, err := sk.Raw()
	if err != nil || sk.Type() != crypto_pb.KeyType_Ed25519 || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: not an Ed25519 key", ErrBadKey)
	}
	return ed25519.PrivateKey(raw), nil
}

// DeviceKey returns the node's Ed25519 transport public key (its peer id
// derives from it).
func (n *Node) DeviceKey() ed25519.PublicKey {
	raw, err := n.host.Peerstore().PubKey(n.host.ID()).Raw()
	if err != nil {
		return nil
	}
	return ed25519.PublicKey(raw)
}

// SignDevice signs msg with the node's transport key (a device
// certificate, identity.DeviceCertMessage).
func (n *Node) SignDevice(msg []byte) ([]byte, error) {
	sk := n.host.Peerstore().PrivKey(n.host.ID())
	if sk == nil {
		return nil, fmt.Errorf("%w: no private key", ErrBadKey)
	}
	return sk.Sign(msg)
}
