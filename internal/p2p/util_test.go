package p2p

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func mustPeer(tb testing.TB, s string) peer.ID {
	tb.Helper()
	id, err := peer.Decode(s)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func mustAddrs(tb testing.TB, ss ...string) []ma.Multiaddr {
	tb.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = m
	}
	return out
}
