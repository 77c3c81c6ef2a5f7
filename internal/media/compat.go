package media

import (
	"context"
	"errors"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// openBlob opens a blob stream to peer: Protocol, or ProtocolV1 for a
// peer that knows only that (v1 true).
func openBlob(ctx context.Context, op Opener, peer string) (st p2p.Stream, v1 bool, err error) {
	st, err = op.OpenStream(ctx, peer, Protocol)
	if !errors.Is(err, p2p.ErrProtocolNotSupported) {
		return st, false, err
	}
	st, err = op.OpenStream(ctx, peer, ProtocolV1)
	return st, err == nil, err
}

// asV1 adapts src to a ProtocolV1 peer, which answers no have query:
// it is asked for chunks directly, as a seed is (a chunk it lacks is
// left to the others). If the first request was a have query, it is
// replaced by the next chunk to ask for; false when there is none.
func (s *sched) asV1(src *source, first *request) bool {
	s.mu.Lock()
	src.seed = true
	if src.gone == nil {
		src.gone = map[Hash]bool{}
	}
	s.mu.Unlock()
	if first.have == nil {
		return true
	}
	r, ok := s.next(src, nil)
	*first = r
	return ok
}
