package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/mr-tron/base58"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
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
	// ErrCardRollback is returned by CheckDeviceVersion for a card whose
	// device list is older than the one already held: an old card replayed
	// (perhaps one that still lists a revoked device) is refused.
	ErrCardRollback = errors.New("contact card has an older device list than the one held (replayed or stale card)")
)

// MaxDevices bounds the devices of one account.
const MaxDevices = 16

// DeviceToWire is the wire form of a device entry.
func DeviceToWire(d Device) *wirepb.Device {
	return &wirepb.Device{PeerId: d.PeerID, Addrs: d.Addrs, Key: d.Key, Signature: d.Signature, Name: d.Name}
}

// DeviceFromWire converts a device entry of account and checks its
// certificate.
func DeviceFromWire(account keys.PublicIdentity, w *wirepb.Device) (Device, error) {
	if w == nil || w.PeerId == "" {
		return Device{}, errorf(ErrBadCard, "device without peer id")
	}
	if len(w.Name) > 100 {
		return Device{}, errorf(ErrBadCard, "device name too long")
	}
	d := Device{PeerID: w.PeerId, Addrs: w.Addrs, Key: w.Key, Signature: w.Signature, Name: w.Name}
	return d, d.verify(account)
}

// CheckDeviceVersion checks that next may replace held as an account's
// card: same account, and a device list at least as new.
func CheckDeviceVersion(held, next *Card) error {
	if !held.Identity.Equal(next.Identity) {
		return errorf(ErrBadCard, "card of another account")
	}
	if next.DeviceVersion < held.DeviceVersion {
		return fmt.Errorf("%w (version %d, held %d)", ErrCardRollback, next.DeviceVersion, held.DeviceVersion)
	}
	return nil
}

// HasDevice reports whether the card lists device peer.
func (c *Card) HasDevice(peer string) bool {
	for _, d := range c.Devices {
		if d.PeerID == peer {
			return true
		}
	}
	return false
}

// Verify checks d's certificate for account (exported for linking).
func (d Device) Verify(account keys.PublicIdentity) error { return d.verify(account) }

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
