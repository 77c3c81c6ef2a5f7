package p2p

import (
	"fmt"
	"io"
)

// EchoProtocol is a diagnostic protocol that sends back every byte it
// receives. Nodes never serve it unless asked to:
//
//	n.Handle(p2p.EchoProtocol, p2p.EchoHandler)
//
// It measures the transport floor (libp2p stream round trip, no samizdat
// logic) that other benchmarks are compared with: see BenchmarkStreamRoundTrip
// and EchoRoundTrip.
const EchoProtocol = "/samizdat/echo/1"

// EchoHandler serves EchoProtocol: it copies the stream back to itself until
// the remote closes its write side, then closes the stream.
func EchoHandler(s Stream) {
	if _, err := io.Copy(s, s); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// EchoRoundTrip writes msg on an EchoProtocol stream and reads the echo into
// reply, which must be len(msg) bytes. It allocates nothing, so a benchmark
// loop measures only the network path.
func EchoRoundTrip(s Stream, msg, reply []byte) error {
	if len(reply) != len(msg) {
		return fmt.Errorf("p2p: echo reply buffer is %d bytes, want %d", len(reply), len(msg))
	}
	if _, err := s.Write(msg); err != nil {
		return fmt.Errorf("p2p: echo write: %w", err)
	}
	if _, err := io.ReadFull(s, reply); err != nil {
		return fmt.Errorf("p2p: echo read: %w", err)
	}
	return nil
}
