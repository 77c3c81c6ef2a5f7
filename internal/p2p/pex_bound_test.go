package p2p

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestPEXStateBounded: peers connecting under ever new ids (ids are free)
// do not grow the peer-exchange state without bound; a peer is asked at
// most once per pexInterval, and once old asks expire new peers are asked
// again.
func TestPEXStateBounded(t *testing.T) {
	var n Node
	now := time.Unix(1_800_000_000, 0)
	newID := func() peer.ID {
		_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPublicKey(pub)
		return id
	}
	first := newID()
	if !n.pexShouldAsk(first, now) || n.pexShouldAsk(first, now.Add(time.Minute)) {
		t.Fatal("a peer is not asked exactly once per interval")
	}
	asked := 0
	for range 2 * pexAskedMax {
		if n.pexShouldAsk(newID(), now) {
			asked++
		}
	}
	if len(n.pexAsked) > pexAskedMax || asked != pexAskedMax-1 {
		t.Fatalf("%d peers remembered, %d asked (bound %d)", len(n.pexAsked), asked, pexAskedMax)
	}
	later := now.Add(pexInterval)
	if !n.pexShouldAsk(newID(), later) || len(n.pexAsked) > pexAskedMax {
		t.Fatalf("after the interval a new peer is not asked (%d remembered)", len(n.pexAsked))
	}
}
