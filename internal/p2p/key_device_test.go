package p2p

import (
	"crypto/ed25519"
	"testing"

	"github.com/samizdat-im/samizdat/internal/identity"
)

// TestDevicePeerIDMatchesLibp2p: identity derives a device's peer id from
// its Ed25519 key without libp2p; it must be the id libp2p gives the key,
// and a node's certificate verifies in a card.
func TestDevicePeerIDMatchesLibp2p(t *testing.T) {
	for range 20 {
		priv, id, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		sk, err := Ed25519Key(priv)
		if err != nil {
			t.Fatal(err)
		}
		if got := identity.DevicePeerID(sk.Public().(ed25519.PublicKey)); got != id {
			t.Fatalf("DevicePeerID = %s, libp2p says %s", got, id)
		}
	}
}
