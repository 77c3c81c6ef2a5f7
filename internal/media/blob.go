package media

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// Protocol is the stream protocol that serves chunks by hash. A request is
// the 32-byte hash of a chunk; the answer is a status byte, then for
// statusOK a 4-byte big-endian length and the sealed chunk. A stream
// carries any number of requests, one after the other; the client closes
// its side when done. It runs on its own streams, so a file never holds
// up the text messages of /samizdat/msg/1.
const Protocol = "/samizdat/blob/1"

const (
	statusOK      = 0
	statusMissing = 1
	// requestTimeout bounds one request and its answer.
	requestTimeout = 30 * time.Second
)

// ErrNoSource is returned by Fetch when no source could provide some
// chunk; it wraps what each source said.
var ErrNoSource = errors.New("media: no source could provide the file")

// Opener opens streams to peers (internal/p2p.Node).
type Opener interface {
	OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error)
}

// Serve answers chunk requests on s from ch until the client is done.
func Serve(ch *Chunks, s p2p.Stream) {
	defer s.Close()
	r := bufio.NewReader(s)
	for {
		s.SetDeadline(time.Now().Add(requestTimeout))
		var h Hash
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		b, err := ch.Get(h)
		if err != nil {
			if _, err := s.Write([]byte{statusMissing}); err != nil {
				return
			}
			continue
		}
		hdr := make([]byte, 5, 5+len(b))
		hdr[0] = statusOK
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(b)))
		if _, err := s.Write(append(hdr, b...)); err != nil {
			s.Reset()
			return
		}
	}
}

// window is how many requests a fetcher keeps in flight on one stream, so
// that a long round trip does not idle the link between chunks.
const window = 8

// fetchFrom takes chunks to fetch from the shared queue (pop) and asks
// peer for them on one stream, window requests ahead of the answers. On
// any failure every chunk in flight goes back to the queue (fail) and the
// source is dropped.
func fetchFrom(ctx context.Context, op Opener, ch *Chunks, peer string, pop func() (Hash, bool), fail func(string, *Hash, error), got func()) {
	s, err := op.OpenStream(ctx, peer, Protocol)
	if err != nil {
		fail(peer, nil, err)
		return
	}
	defer s.Close()
	inflight := make(chan Hash, window)
	stop := make(chan struct{})
	var (
		werr    error
		wdone   = make(chan struct{})
		pending *Hash // popped by the writer, not sent
	)
	go func() { // the writer
		defer close(wdone)
		defer close(inflight)
		for {
			h, ok := pop()
			if !ok {
				s.CloseWrite()
				return
			}
			if ch.Has(h) {
				got()
				continue
			}
			select {
			case inflight <- h:
			case <-stop:
				pending = &h
				return
			case <-ctx.Done():
				pending = &h
				return
			}
			s.SetDeadline(time.Now().Add(requestTimeout))
			if _, err := s.Write(h[:]); err != nil {
				werr = err
				return
			}
		}
	}()
	r := bufio.NewReaderSize(s, 64<<10)
	var rerr error
	var failed *Hash
	for h := range inflight {
		if rerr = ctx.Err(); rerr != nil {
			failed = &h
			break
		}
		s.SetDeadline(time.Now().Add(requestTimeout))
		b, err := readAnswer(r, h)
		if err == nil {
			err = ch.Put(h, b)
		}
		if err != nil {
			rerr, failed = err, &h
			break
		}
		got()
	}
	if rerr == nil && werr == nil && pending == nil {
		return
	}
	// Give back everything not stored, then drop the source.
	s.Reset()
	close(stop)
	<-wdone
	var back []Hash
	if failed != nil {
		back = append(back, *failed)
	}
	if pending != nil {
		back = append(back, *pending)
	}
	for h := range inflight {
		back = append(back, h)
	}
	err = rerr
	if err == nil {
		err = werr
	}
	if err == nil {
		err = ctx.Err()
	}
	for i := range back {
		if i == 0 {
			fail(peer, &back[i], err)
		} else {
			fail(peer, &back[i], nil)
		}
	}
	if len(back) == 0 {
		fail(peer, nil, err)
	}
}

// readAnswer reads the answer to a request for chunk h, unchecked.
func readAnswer(r *bufio.Reader, h Hash) ([]byte, error) {
	st, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if st == statusMissing {
		return nil, fmt.Errorf("%w: %s", ErrNoChunk, h)
	}
	if st != statusOK {
		return nil, fmt.Errorf("media: bad answer status %d", st)
	}
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > MaxSealedChunk {
		return nil, fmt.Errorf("media: chunk of %d bytes announced", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// fetchSet fetches the chunks want from sources into ch, one stream per
// source, all sources at once, each taking the next chunk still wanted.
// A source that fails (offline, lacks a chunk, sends a corrupt one) is
// dropped and its chunk is left to the others. got is called for every
// chunk stored.
func fetchSet(ctx context.Context, op Opener, ch *Chunks, want []Hash, sources []string, got func()) error {
	if len(want) == 0 {
		return nil // nothing to dial for
	}
	var (
		mu    sync.Mutex
		queue = append([]Hash(nil), want...)
		errs  []error
		dead  = map[string]bool{}
	)
	pop := func() (Hash, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(queue) == 0 {
			return Hash{}, false
		}
		h := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		return h, true
	}
	fail := func(peer string, h *Hash, err error) {
		mu.Lock()
		defer mu.Unlock()
		if h != nil {
			queue = append(queue, *h)
		}
		dead[peer] = true
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", short(peer), err))
		}
	}
	// A round ends when the queue is empty; a chunk given back by a
	// failing source after the others left starts another round with the
	// sources still standing.
	for {
		if err := fetchRound(ctx, op, ch, sources, pop, fail, got); err != nil {
			return err
		}
		if len(queue) == 0 {
			return nil
		}
		var alive []string
		for _, p := range sources {
			if !dead[p] {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("%w (%d chunks missing): %w", ErrNoSource, len(queue), errors.Join(errs...))
		}
		sources = alive
	}
}

func fetchRound(ctx context.Context, op Opener, ch *Chunks, sources []string,
	pop func() (Hash, bool), fail func(string, *Hash, error), got func()) error {
	var wg sync.WaitGroup
	for _, peer := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fetchFrom(ctx, op, ch, peer, pop, fail, got)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// Fetch brings every chunk of m that ch lacks from sources (peer ids),
// checking each against its hash: first the index, then the data. It
// resumes from what ch holds, so calling it again after a failure or a
// restart fetches only what is missing. progress, if not nil, is called
// with the data chunks held and their total.
func Fetch(ctx context.Context, op Opener, ch *Chunks, m *Manifest, sources []string, progress func(done, total int)) error {
	if len(sources) == 0 {
		return fmt.Errorf("%w: no sources", ErrNoSource)
	}
	var idx []Hash
	for _, h := range m.Index {
		if !ch.Has(h) {
			idx = append(idx, h)
		}
	}
	if err := fetchSet(ctx, op, ch, idx, sources, func() {}); err != nil {
		return err
	}
	hashes, missing, err := Missing(ch, m)
	if err != nil {
		return err
	}
	total := len(hashes)
	var mu sync.Mutex
	done := total - len(missing)
	if progress != nil {
		progress(done, total)
	}
	want := make([]Hash, len(missing))
	for i, n := range missing {
		want[len(missing)-1-i] = hashes[n] // popped from the end: in order
	}
	return fetchSet(ctx, op, ch, want, sources, func() {
		mu.Lock()
		done++
		d := done
		mu.Unlock()
		if progress != nil {
			progress(d, total)
		}
	})
}

func short(peer string) string {
	if len(peer) > 12 {
		return peer[len(peer)-8:]
	}
	return peer
}
