package identity

import (
	"crypto/ed25519"
	"errors"

	"github.com/mr-tron/base58"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
)

// A device certificate binds a device's transport key (the libp2p Ed25519
// key its peer id is derived from) to an account: the device key signs
// DeviceDomain, the account identity and the peer id, and the account key
// signs the card that carries the certificate. Without it a stranger's
// card could name somebody else's device and have that device's messages
// attributed to the stranger (issue 14).

// DeviceDomain separates device certificates from every other signature.
const DeviceDomain = "samizdat/device/v1"

// Errors about device certificates; both also match ErrBadCard.
var (
	// ErrOldCard is returned for a card from before device certificates:
	// its devices are not proven, so it is not used. The fix is a fresh
	// invite from a current version.
	ErrOldCard = errors.New("contact card from an older version (devices not certified): ask for a new invite")
	// ErrBadDevice is returned when a card names a device whose key did
	// not certify it for the card's account.
	ErrBadDevice = errors.New("contact card names a device that did not certify it")
)

// DevicePeerID returns the libp2p peer id of an Ed25519 device key: the
// base58 identity multihash of the key's libp2p protobuf encoding (type
// Ed25519 = 1, 32 key bytes), as go-libp2p derives it.
func DevicePeerID(pub ed25519.PublicKey) string {
	b := make([]byte, 0, 6+ed25519.PublicKeySize)
	b = append(b, 0x00, 0x24) // multihash: identity, 36 bytes
	b = append(b, 0x08, 0x01, 0x12, 0x20)
	return base58.Encode(append(b, pub...))
}

// DeviceCertMessage is what a device key signs to certify that its peer id
// belongs to account.
func DeviceCertMessage(account keys.PublicIdentity, peerID string) []byte {
	b := append([]byte(DeviceDomain), 0)
	b = append(b, account.Marshal()...)
	return append(b, peerID...)
}

// NewDevice returns the device entry for a card of account: the peer id of
// pub, its addresses and its certificate, made by sign (the device's
// transport key, e.g. a libp2p Ed25519 key's Sign).
func NewDevice(account keys.PublicIdentity, pub ed25519.PublicKey, addrs []string, sign func([]byte) ([]byte, error)) (Device, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Device{}, errorf(ErrBadCard, "device key of %d bytes", len(pub))
	}
	id := DevicePeerID(pub)
	sig, err := sign(DeviceCertMessage(account, id))
	if err != nil {
		return Device{}, err
	}
	d := Device{PeerID: id, Addrs: addrs, Key: pub, Signature: sig}
	if err := d.verify(account); err != nil {
		return Device{}, err
	}
	return d, nil
}

// verify checks that d's key certified d's peer id for account.
func (d Device) verify(account keys.PublicIdentity) error {
	if len(d.Key) == 0 && len(d.Signature) == 0 {
		return errorf(ErrBadCard, "%w", ErrOldCard)
	}
	if len(d.Key) != ed25519.PublicKeySize || DevicePeerID(d.Key) != d.PeerID ||
		!ed25519.Verify(d.Key, DeviceCertMessage(account, d.PeerID), d.Signature) {
		return errorf(ErrBadCard, "%w", ErrBadDevice)
	}
	return nil
}
