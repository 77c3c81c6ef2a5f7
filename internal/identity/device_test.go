package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
)

func newDevice(t testing.TB, account keys.PublicIdentity) Device {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDevice(account, pub, []string{"/ip4/127.0.0.1/tcp/4001"}, func(m []byte) ([]byte, error) { return ed25519.Sign(priv, m), nil })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCardDeviceCertificate: a card is accepted only if each device's key
// certified that device for the card's account. A card naming another
// account's device (with that device's own certificate copied), a key
// that is not the peer id's, or a certificate over another peer id is
// refused with ErrBadDevice; a card from before certificates with the
// named ErrOldCard.
func TestCardDeviceCertificate(t *testing.T) {
	alice, aliceCard, _ := newCard(t)
	mallory, _, _ := newCard(t)
	sign := func(id *keys.Identity, devs ...Device) error {
		now := time.Unix(1_800_000_000, 0)
		b, err := SignCard(id, &Card{Identity: id.Public(), Name: "x", Devices: devs, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseSignedCard(b)
		return err
	}
	if err := sign(alice, aliceCard.Devices[0]); err != nil {
		t.Fatalf("alice's own device: %v", err)
	}
	if err := sign(mallory, aliceCard.Devices[0]); !errors.Is(err, ErrBadDevice) || !errors.Is(err, ErrBadCard) {
		t.Fatalf("mallory's card with alice's device: %v, want ErrBadDevice", err)
	}
	own := newDevice(t, mallory.Public())
	wrongPeer := own
	wrongPeer.PeerID = aliceCard.Devices[0].PeerID // her peer id, mallory's key and certificate
	if err := sign(mallory, wrongPeer); !errors.Is(err, ErrBadDevice) {
		t.Fatalf("peer id of another key: %v, want ErrBadDevice", err)
	}
	badSig := own
	badSig.Signature = aliceCard.Devices[0].Signature
	if err := sign(mallory, badSig); !errors.Is(err, ErrBadDevice) {
		t.Fatalf("another certificate: %v, want ErrBadDevice", err)
	}
	if err := sign(mallory, own, aliceCard.Devices[0]); !errors.Is(err, ErrBadDevice) {
		t.Fatalf("a second, foreign device: %v, want ErrBadDevice", err)
	}
	old := Device{PeerID: own.PeerID, Addrs: own.Addrs}
	if err := sign(mallory, old); !errors.Is(err, ErrOldCard) || !errors.Is(err, ErrBadCard) {
		t.Fatalf("card without certificates: %v, want ErrOldCard", err)
	}
	if err := sign(mallory, own); err != nil {
		t.Fatalf("mallory's own device: %v", err)
	}
	// In signed history (a group op) an old card stays readable, without
	// the devices it does not prove; a forged device is still refused.
	historic := func(devs ...Device) (*Card, error) {
		now := time.Unix(1_800_000_000, 0)
		b, err := SignCard(mallory, &Card{Identity: mallory.Public(), Name: "x", Devices: devs, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return ParseHistoricCard(b)
	}
	if c, err := historic(old); err != nil || len(c.Devices) != 0 || c.Name != "x" {
		t.Fatalf("historic old card: %+v %v", c, err)
	}
	if _, err := historic(aliceCard.Devices[0]); !errors.Is(err, ErrBadDevice) {
		t.Fatalf("historic card with alice's device: %v, want ErrBadDevice", err)
	}
}

func TestCardDeviceVersion(t *testing.T) {
	id, _ := keys.GenerateIdentity(rand.Reader)
	other, _ := keys.GenerateIdentity(rand.Reader)
	held := &Card{Identity: id.Public(), DeviceVersion: 3}
	if err := CheckDeviceVersion(held, &Card{Identity: id.Public(), DeviceVersion: 3}); err != nil {
		t.Errorf("same version: %v", err)
	}
	if err := CheckDeviceVersion(held, &Card{Identity: id.Public(), DeviceVersion: 4}); err != nil {
		t.Errorf("newer: %v", err)
	}
	if err := CheckDeviceVersion(held, &Card{Identity: id.Public(), DeviceVersion: 2}); !errors.Is(err, ErrCardRollback) {
		t.Errorf("older: %v", err)
	}
	if err := CheckDeviceVersion(held, &Card{Identity: other.Public(), DeviceVersion: 9}); !errors.Is(err, ErrBadCard) {
		t.Errorf("other account: %v", err)
	}
	// The version and device names survive signing and parsing.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dev, err := NewDevice(id.Public(), pub, nil, func(m []byte) ([]byte, error) { return ed25519.Sign(priv, m), nil })
	if err != nil {
		t.Fatal(err)
	}
	dev.Name = "phone"
	signed, err := SignCard(id, &Card{Identity: id.Public(), Devices: []Device{dev}, DeviceVersion: 7})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseSignedCard(signed)
	if err != nil || c.DeviceVersion != 7 || c.Devices[0].Name != "phone" || !c.HasDevice(dev.PeerID) {
		t.Fatalf("round trip: %v %+v", err, c)
	}
}
