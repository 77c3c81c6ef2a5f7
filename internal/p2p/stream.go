package p2p

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
)

// Stream is a reliable, ordered, bidirectional byte stream to one remote
// peer, multiplexed over an encrypted connection. Close closes both
// directions; CloseWrite sends EOF and keeps reading; Reset aborts both
// directions (use it on errors so the remote sees the failure).
type Stream interface {
	io.ReadWriteCloser
	CloseWrite() error
	Reset() error
	SetDeadline(time.Time) error
	// RemotePeer is the peer id of the other end, authenticated by the
	// security handshake.
	RemotePeer() string
}

// stream adapts a libp2p stream to Stream.
type stream struct {
	network.Stream
}

var _ Stream = stream{}

func (s stream) RemotePeer() string {
	return s.Conn().RemotePeer().String()
}

// streamError turns libp2p's stream-opening errors into our sentinels.
func streamError(err error) error {
	if errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}) {
		return fmt.Errorf("%w: %w", ErrProtocolNotSupported, err)
	}
	return err
}
