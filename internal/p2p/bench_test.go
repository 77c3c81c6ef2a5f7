package p2p

import (
	"testing"
	"time"
)

// benchPair is two loopback TCP hosts, connected, the server serving echo.
func benchPair(b *testing.B) (client, server *Node) {
	b.Helper()
	server = newTestNode(b, Config{ListenAddrs: []string{tcpAddr}})
	client = newTestNode(b, Config{})
	server.Handle(EchoProtocol, EchoHandler)
	if err := client.Connect(testCtx(b, 10*time.Second), server.PeerID(), server.Addrs()); err != nil {
		b.Fatal(err)
	}
	return client, server
}

// BenchmarkStreamRoundTrip is the floor other benchmarks compare with: one
// long-lived stream between two hosts on loopback TCP (Noise, yamux); each op
// writes 100 bytes and reads the 100-byte echo.
func BenchmarkStreamRoundTrip(b *testing.B) {
	client, server := benchPair(b)
	ctx := testCtx(b, time.Minute)
	s, err := client.OpenStream(ctx, server.PeerID(), EchoProtocol)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	msg, reply := make([]byte, 100), make([]byte, 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := EchoRoundTrip(s, msg, reply); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStreamRoundTripNewStream is the same round trip on a new stream
// per op (stream open + protocol negotiation + close), over one connection.
func BenchmarkStreamRoundTripNewStream(b *testing.B) {
	client, server := benchPair(b)
	ctx := testCtx(b, 5*time.Minute)
	msg, reply := make([]byte, 100), make([]byte, 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		s, err := client.OpenStream(ctx, server.PeerID(), EchoProtocol)
		if err != nil {
			b.Fatal(err)
		}
		if err := EchoRoundTrip(s, msg, reply); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
