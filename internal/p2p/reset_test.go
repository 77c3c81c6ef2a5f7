package p2p

import (
	"io"
	"testing"
	"time"
)

// TestIsReset: a read on a stream the other end reset is a reset; one on
// a stream it closed is an end of file, not a reset.
func TestIsReset(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	a := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	b := newTestNode(t, Config{ListenAddrs: []string{tcpAddr}})
	const proto = "/samizdat/test-reset/1"
	a.Handle(proto, func(s Stream) {
		buf := make([]byte, 1)
		if _, err := io.ReadFull(s, buf); err != nil {
			_ = s.Reset()
			return
		}
		if buf[0] == 'r' {
			_ = s.Reset()
			return
		}
		_ = s.Close()
	})
	b.AddAddrs(a.PeerID(), a.Addrs())
	read := func(first byte) error {
		t.Helper()
		s, err := b.OpenStream(ctx, a.PeerID(), proto)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := s.Write([]byte{first}); err != nil {
			return err
		}
		_, err = io.ReadAll(s)
		return err
	}
	if err := read('r'); !IsReset(err) {
		t.Fatalf("read after the remote reset: %v, IsReset false", err)
	}
	if err := read('c'); err != nil || IsReset(err) {
		t.Fatalf("read after the remote closed: %v", err)
	}
	if IsReset(io.EOF) || IsReset(nil) {
		t.Fatal("IsReset(io.EOF or nil) is true")
	}
}
