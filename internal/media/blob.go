package media

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// Protocol is the stream protocol that serves chunks by hash. A request is
// the 32-byte hash of a chunk; the answer is a status byte, then for
// statusOK a 4-byte big-endian length and the sealed chunk. A request of
// 32 zero bytes is a have query instead: a 2-byte big-endian count n (at
// most MaxHaveQuery) and n hashes, answered by statusHave and a bitmap of
// ceil(n/8) bytes (bit i, most significant first: the i-th hash is held).
// A stream carries any number of requests, one after the other, answered
// in order; the client closes its side when done. It runs on its own
// streams, so a file never holds up the text messages of /samizdat/msg/1.
const Protocol = "/samizdat/blob/2"

// ProtocolV1 is the blob protocol before the busy and have answers: the
// same requests of one chunk, answered OK or missing only. It is still
// served (never busy: an older fetcher drops a source that says so) and
// spoken to a peer that knows no other (compat.go).
const ProtocolV1 = "/samizdat/blob/1"

const (
	statusOK      = 0
	statusMissing = 1
	// statusBusy: held, but the source will not send it now (a sender
	// that already uploaded it to the swarm): ask another holder.
	statusBusy = 2
	statusHave = 3
	// requestTimeout bounds one request and its answer.
	requestTimeout = 30 * time.Second
	// MaxHaveQuery is the most hashes one have query names.
	MaxHaveQuery = 1024
)

// ErrNoSource is returned by Fetch when no source could provide some
// chunk; it wraps what each source said.
var ErrNoSource = errors.New("media: no source could provide the file")

// errBusy is a source's answer that it will not send a chunk now.
var errBusy = errors.New("media: source busy")

// Opener opens streams to peers (internal/p2p.Node).
type Opener interface {
	OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error)
}

// Serve answers chunk requests on s from ch until the client is done.
func Serve(ch *Chunks, s p2p.Stream) { ServeWith(ch, s, nil, nil) }

// ServeWith is Serve with a gate: allow (nil: everything) says whether a
// held chunk is sent to the peer asking now, and sent (nil: nothing)
// is told of every chunk sent and its length.
func ServeWith(ch *Chunks, s p2p.Stream, allow func(h Hash, peer string) bool, sent func(h Hash, n int)) {
	defer s.Close()
	r := bufio.NewReaderSize(s, 4<<10)
	fw := frameWriter{s}
	w := bufio.NewWriterSize(fw, frameData)
	var zero Hash
	// An answer is read into buf after room for its header, and written
	// with it in one piece (no copy through w).
	buf := make([]byte, answerHeader+MaxSealedChunk+1)
	for {
		s.SetDeadline(time.Now().Add(requestTimeout))
		var h Hash
		if r.Buffered() == 0 {
			// The client waits for what is buffered: send it before
			// blocking on the next request.
			if err := w.Flush(); err != nil {
				return
			}
		}
		if _, err := io.ReadFull(r, h[:]); err != nil {
			w.Flush()
			return
		}
		if h == zero {
			if err := answerHave(ch, r, w); err != nil {
				s.Reset()
				return
			}
			continue
		}
		// The gate first: a swarm's sender refuses most requests, and
		// a refusal must not cost a chunk read.
		if allow != nil && ch.Has(h) && !allow(h, s.RemotePeer()) {
			if err := w.WriteByte(statusBusy); err != nil {
				return
			}
			continue
		}
		b, err := ch.read(h, buf[answerHeader:])
		if err != nil {
			if err := w.WriteByte(statusMissing); err != nil {
				return
			}
			continue
		}
		a := buf[:answerHeader+len(b)]
		if len(b) > 0 && &b[0] != &buf[answerHeader] { // grown by read (buf is large enough)
			a = append(buf[:answerHeader], b...)
		}
		a[0] = statusOK
		binary.BigEndian.PutUint32(a[1:], uint32(len(b)))
		if w.Buffered() > 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
		if _, err := fw.Write(a); err != nil {
			s.Reset()
			return
		}
		if sent != nil {
			sent(h, len(b))
		}
	}
}

// answerHeader is the status byte and length before a chunk sent.
const answerHeader = 5

// frameData is how much a server writes to its stream at a time: with
// yamux's 12-byte frame header, one frame is then exactly one message of
// the Noise secure channel (at most 65,519 bytes of plaintext). Larger
// writes are cut by yamux into frames of 65,524 bytes, each sent as two
// Noise messages (65,519 and 17 bytes): twice the messages, system calls
// and wake-ups of the reader on either side. Over another transport the
// size only sets how writes are cut.
const frameData = 65519 - 12

// frameWriter writes to w frameData bytes at a time.
type frameWriter struct{ w io.Writer }

func (f frameWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.w.Write(b[n:min(len(b), n+frameData)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// answerHave answers a have query (after its zero hash).
func answerHave(ch *Chunks, r *bufio.Reader, w *bufio.Writer) error {
	var nb [2]byte
	if _, err := io.ReadFull(r, nb[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint16(nb[:]))
	if n > MaxHaveQuery {
		return fmt.Errorf("media: have query of %d hashes", n)
	}
	bits := make([]byte, 1+(n+7)/8)
	bits[0] = statusHave
	for i := range n {
		var h Hash
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return err
		}
		if ch.Has(h) {
			bits[1+i/8] |= 0x80 >> (i % 8)
		}
	}
	_, err := w.Write(bits)
	return err
}

// haveQuery encodes a have query for hs.
func haveQuery(hs []Hash) []byte {
	b := make([]byte, HashSize+2, HashSize+2+len(hs)*HashSize)
	binary.BigEndian.PutUint16(b[HashSize:], uint16(len(hs)))
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

// readHave reads the answer to a have query of n hashes.
func readHave(r *bufio.Reader, n int) ([]bool, error) {
	st, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if st != statusHave {
		return nil, fmt.Errorf("media: bad answer status %d to a have query", st)
	}
	bits := make([]byte, (n+7)/8)
	if _, err := io.ReadFull(r, bits); err != nil {
		return nil, err
	}
	out := make([]bool, n)
	for i := range out {
		out[i] = bits[i/8]&(0x80>>(i%8)) != 0
	}
	return out, nil
}

// readAnswer reads the answer to a request for chunk h, unchecked, into
// buf if it is large enough.
func readAnswer(r *bufio.Reader, h Hash, buf []byte) ([]byte, error) {
	st, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	switch st {
	case statusOK:
	case statusMissing:
		return nil, fmt.Errorf("%w: %s", ErrNoChunk, h)
	case statusBusy:
		return nil, errBusy
	default:
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
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	b := buf[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Fetch brings every chunk of m that ch lacks from sources (peer ids that
// hold the whole file), checking each against its hash: first the index,
// then the data. It resumes from what ch holds, so calling it again after
// a failure or a restart fetches only what is missing. progress, if not
// nil, is called with the data chunks held and their total.
func Fetch(ctx context.Context, op Opener, ch *Chunks, m *Manifest, sources []string, progress func(done, total int)) error {
	return FetchSwarm(ctx, op, ch, m, sources, nil, progress)
}

// FetchSwarm is Fetch from a swarm: seeds hold the whole file (its
// sender's devices), peers are fetching it too (the other members of a
// group) and serve the chunks they have checked. Each peer is asked which
// chunks it holds; a chunk a peer offers is taken from it rather than
// from a seed, so the seeds upload little more than one copy however
// many fetch. Chunks are asked for in a random order, so that fetchers
// starting together hold different chunks to trade.
func FetchSwarm(ctx context.Context, op Opener, ch *Chunks, m *Manifest, seeds, peers []string, progress func(done, total int)) error {
	if len(seeds)+len(peers) == 0 {
		return fmt.Errorf("%w: no sources", ErrNoSource)
	}
	var idx []Hash
	for _, h := range m.Index {
		if !ch.Has(h) {
			idx = append(idx, h)
		}
	}
	if err := fetchSet(ctx, op, ch, idx, seeds, peers, func() {}); err != nil {
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
		want[i] = hashes[n]
	}
	if len(peers) > 0 {
		mrand.Shuffle(len(want), func(i, k int) { want[i], want[k] = want[k], want[i] })
	}
	return fetchSet(ctx, op, ch, want, seeds, peers, func() {
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
