package mailbox

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Blobs (issue 16): a host also keeps, for a mailbox id, the chunks of the
// files sent to its owner while the owner was offline. Each blob is
// sealed by the sender under a key derived from the file's key (which
// travels only inside the end-to-end encrypted message) and padded to
// BlobSize, so the host sees how many chunks a file has and nothing else;
// it is filed under a 32-byte blob id that only the sender and the owner
// can compute, so it cannot be linked to the chunk addresses the file's
// other holders serve. Knowing a blob id is what allows getting or
// deleting it (whoever knows it can open it anyway); blobs have quotas of
// their own, apart from envelopes, and a TTL.
//
// The protocol is BlobProtocol, in binary frames. Every request starts
// with an op byte and the 32-byte mailbox id; ids are 32 bytes; n is a
// 2-byte big-endian count (at most MaxBlobBatch); every answer starts with
// a status byte (blobOK, or a refusal).
//
//	have   op=1 id n ids        → status, bitmap of ceil(n/8) bytes (msb first)
//	room   op=2 id count(4)     → status (is there room for count more blobs?)
//	put    op=3 id n ids        → status; if OK, the client sends n blobs of
//	                              BlobSize bytes and gets a status for each
//	get    op=4 id blob-id      → status, then BlobSize bytes if OK
//	delete op=5 id n ids        → status, count(2) of blobs deleted

// BlobProtocol is the stream protocol id of the blob service.
const BlobProtocol = "/samizdat/mailbox-blob/1"

// BlobSize is the size of every blob: a 4-byte length, a sealed chunk of
// at most 256 KiB + 16 bytes padded to that size, and a 16-byte tag
// (internal/media builds them; its tests check the two agree).
const BlobSize = 4 + (256<<10 + 16) + 16

// MaxBlobBatch bounds the ids of one request.
const MaxBlobBatch = 1024

// Defaults for the zero values of ServerConfig's blob settings.
const (
	DefaultBlobMailboxQuota = 256 << 20 // blob bytes per mailbox
	DefaultBlobTotalQuota   = 2 << 30   // blob bytes in all
	DefaultBlobTTL          = 7 * 24 * time.Hour
)

const (
	opBlobHave   = 1
	opBlobRoom   = 2
	opBlobPut    = 3
	opBlobGet    = 4
	opBlobDelete = 5

	blobOK          = 0
	blobMissing     = 1
	blobMailboxFull = 2
	blobStorageFull = 3
	blobRateLimited = 4
	blobBadRequest  = 5
	blobUnavailable = 6
)

// ErrNoBlob is returned by BlobConn.Get for a blob the host does not hold
// (never deposited, deleted or expired).
var ErrNoBlob = errors.New("mailbox: blob not held")

// blobStatusError maps a blob status to the package errors.
func blobStatusError(st byte) error {
	switch st {
	case blobOK:
		return nil
	case blobMissing:
		return ErrNoBlob
	case blobMailboxFull:
		return fmt.Errorf("%w: %w: over quota: the mailbox holds all the file space the host allows", ErrRefused, ErrQuotaFull)
	case blobStorageFull:
		return fmt.Errorf("%w: %w: over quota: the host's file space is full", ErrRefused, ErrQuotaFull)
	case blobRateLimited:
		return fmt.Errorf("%w: %w", ErrRefused, ErrRateLimited)
	case blobUnavailable:
		return fmt.Errorf("%w: %w", ErrRefused, ErrUnavailable)
	case blobBadRequest:
		return fmt.Errorf("%w: the host found our request malformed", ErrRefused)
	}
	return fmt.Errorf("%w: blob status %d", ErrMalformed, st)
}

func blobQuotaStatus(err error) byte {
	switch {
	case errors.Is(err, store.ErrMailboxFull):
		return blobMailboxFull
	case errors.Is(err, store.ErrStorageFull):
		return blobStorageFull
	}
	return blobUnavailable
}

// handleBlobs owns one inbound blob stream.
func (s *Server) handleBlobs(st p2p.Stream) {
	done, ok := s.track(st)
	if !ok {
		return
	}
	defer done()
	var in io.Reader = countingReader{st, &s.stats.bytesIn}
	var out io.Writer = countingWriter{st, &s.stats.bytesOut}
	if s.trace != nil {
		_, _ = io.WriteString(s.trace, "\n#stream peer="+st.RemotePeer()+" blobs\n")
		in = io.TeeReader(in, s.trace)
		out = io.MultiWriter(s.trace, out)
	}
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriterSize(out, 64<<10)
	if err := s.serveBlobs(st, r, w); err != nil {
		s.log.Debug("blobStreamReset", "peer", shortPeer(st.RemotePeer()), "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// readIDs reads a count and that many 32-byte ids.
func readIDs(r io.Reader) ([][]byte, error) {
	var nb [2]byte
	if _, err := io.ReadFull(r, nb[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(nb[:]))
	if n == 0 || n > MaxBlobBatch {
		return nil, fmt.Errorf("%w: %d ids", ErrMalformed, n)
	}
	raw := make([]byte, n*HashSize)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = raw[i*HashSize : (i+1)*HashSize]
	}
	return out, nil
}

func bitmap(has []bool) []byte {
	b := make([]byte, (len(has)+7)/8)
	for i, ok := range has {
		if ok {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	return b
}

// serveBlobs answers blob requests until the client closes its side.
func (s *Server) serveBlobs(st p2p.Stream, r *bufio.Reader, w *bufio.Writer) error {
	ctx := s.ctx
	body := make([]byte, BlobSize)
	for {
		_ = st.SetDeadline(time.Now().Add(s.cfg.StreamTimeout))
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		var hdr [1 + IDSize]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return w.Flush()
			}
			return err
		}
		op, mb := hdr[0], hdr[1:]
		if (op == opBlobPut || op == opBlobRoom) && !s.limiter.allow(st.RemotePeer()) {
			// The request's body still follows: read it, then refuse.
			if op == opBlobPut {
				if _, err := readIDs(r); err != nil {
					return err
				}
			} else if _, err := io.ReadFull(r, make([]byte, 4)); err != nil {
				return err
			}
			s.stats.blobsRefused.Add(1)
			if err := w.WriteByte(blobRateLimited); err != nil {
				return err
			}
			continue
		}
		now := s.cfg.Now()
		switch op {
		case opBlobHave:
			ids, err := readIDs(r)
			if err != nil {
				return err
			}
			has, err := s.cfg.Store.BlobHas(ctx, mb, ids, now)
			if err != nil {
				w.WriteByte(blobUnavailable)
				continue
			}
			w.WriteByte(blobOK)
			w.Write(bitmap(has))
		case opBlobRoom:
			var cb [4]byte
			if _, err := io.ReadFull(r, cb[:]); err != nil {
				return err
			}
			need := int64(binary.BigEndian.Uint32(cb[:])) * BlobSize
			if err := s.cfg.Store.BlobRoom(ctx, mb, need, s.blobQuota); err != nil {
				s.log.Info("blobsOverQuota", "mailbox", ID(mb).Short())
				w.WriteByte(blobQuotaStatus(err))
				continue
			}
			w.WriteByte(blobOK)
		case opBlobPut:
			ids, err := readIDs(r)
			if err != nil {
				return err
			}
			if err := w.WriteByte(blobOK); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
			expires := now.Add(s.blobTTL)
			for _, id := range ids {
				_ = st.SetDeadline(time.Now().Add(s.cfg.StreamTimeout))
				if _, err := io.ReadFull(r, body); err != nil {
					return err
				}
				res, err := s.cfg.Store.BlobPut(ctx, mb, id, body, expires, s.blobQuota)
				if err != nil {
					s.stats.blobsRefused.Add(1)
					s.log.Info("blobRefused", "mailbox", ID(mb).Short(), "err", err)
					w.WriteByte(blobQuotaStatus(err))
					continue
				}
				if res == store.BlobStored {
					s.stats.blobs.Add(1)
				}
				w.WriteByte(blobOK)
				if r.Buffered() == 0 {
					if err := w.Flush(); err != nil {
						return err
					}
				}
			}
		case opBlobGet:
			id := make([]byte, HashSize)
			if _, err := io.ReadFull(r, id); err != nil {
				return err
			}
			b, err := s.cfg.Store.BlobGet(ctx, mb, id, now)
			switch {
			case errors.Is(err, store.ErrNotFound):
				w.WriteByte(blobMissing)
			case err != nil || len(b) != BlobSize:
				w.WriteByte(blobUnavailable)
			default:
				w.WriteByte(blobOK)
				w.Write(b)
			}
		case opBlobDelete:
			ids, err := readIDs(r)
			if err != nil {
				return err
			}
			n, err := s.cfg.Store.BlobDelete(ctx, mb, ids)
			if err != nil {
				w.WriteByte(blobUnavailable)
				continue
			}
			w.WriteByte(blobOK)
			w.Write(binary.BigEndian.AppendUint16(nil, uint16(n)))
		default:
			return fmt.Errorf("%w: blob op %d", ErrMalformed, op)
		}
	}
}

// BlobConn is a client stream to one host's blob service. It is not safe
// for concurrent use.
type BlobConn struct {
	st p2p.Stream
	r  *bufio.Reader
	w  *bufio.Writer
}

// DialBlobs opens a blob stream to server.
func DialBlobs(ctx context.Context, o Opener, server string) (*BlobConn, error) {
	st, err := o.OpenStream(ctx, server, BlobProtocol)
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	return &BlobConn{st: st, r: bufio.NewReaderSize(st, 64<<10), w: bufio.NewWriterSize(st, 64<<10)}, nil
}

// Close ends the stream.
func (c *BlobConn) Close() error { return c.st.Close() }

func (c *BlobConn) start(ctx context.Context, op byte, mb ID) func() bool {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	_ = c.st.SetDeadline(deadline)
	c.w.WriteByte(op)
	c.w.Write(mb[:])
	return context.AfterFunc(ctx, func() { _ = c.st.Reset() })
}

func (c *BlobConn) writeIDs(ids []Hash) {
	c.w.Write(binary.BigEndian.AppendUint16(nil, uint16(len(ids))))
	for _, id := range ids {
		c.w.Write(id[:])
	}
}

func checkBatch(ids []Hash) error {
	if len(ids) == 0 || len(ids) > MaxBlobBatch {
		return fmt.Errorf("mailbox: %d blob ids in one request (1 to %d)", len(ids), MaxBlobBatch)
	}
	return nil
}

func (c *BlobConn) status() error {
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("mailbox: send: %w", err)
	}
	st, err := c.r.ReadByte()
	if err != nil {
		return fmt.Errorf("mailbox: receive: %w", err)
	}
	return blobStatusError(st)
}

// Have reports which of ids the host holds for mailbox mb.
func (c *BlobConn) Have(ctx context.Context, mb ID, ids []Hash) ([]bool, error) {
	if err := checkBatch(ids); err != nil {
		return nil, err
	}
	defer c.start(ctx, opBlobHave, mb)()
	c.writeIDs(ids)
	if err := c.status(); err != nil {
		return nil, err
	}
	bits := make([]byte, (len(ids)+7)/8)
	if _, err := io.ReadFull(c.r, bits); err != nil {
		return nil, fmt.Errorf("mailbox: receive: %w", err)
	}
	out := make([]bool, len(ids))
	for i := range out {
		out[i] = bits[i/8]&(0x80>>(i%8)) != 0
	}
	return out, nil
}

// Room asks whether the host has room for n more blobs for mailbox mb:
// nil, or a refusal wrapping ErrQuotaFull. The answer is advisory (Put is
// what counts), so a sender does not start a file that cannot fit.
func (c *BlobConn) Room(ctx context.Context, mb ID, n int) error {
	defer c.start(ctx, opBlobRoom, mb)()
	c.w.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
	return c.status()
}

// Put deposits blobs ids for mailbox mb, blob(i) giving the i-th (exactly
// BlobSize bytes), and returns how many the host accepted in order before
// the first refusal, which it returns.
func (c *BlobConn) Put(ctx context.Context, mb ID, ids []Hash, blob func(i int) ([]byte, error)) (int, error) {
	if err := checkBatch(ids); err != nil {
		return 0, err
	}
	defer c.start(ctx, opBlobPut, mb)()
	c.writeIDs(ids)
	if err := c.status(); err != nil {
		return 0, err
	}
	// The blobs go out while the answers come back.
	werr := make(chan error, 1)
	go func() {
		for i := range ids {
			b, err := blob(i)
			if err == nil && len(b) != BlobSize {
				err = fmt.Errorf("mailbox: blob of %d bytes, want %d", len(b), BlobSize)
			}
			if err == nil {
				_, err = c.w.Write(b)
			}
			if err != nil {
				_ = c.st.Reset()
				werr <- err
				return
			}
		}
		werr <- c.w.Flush()
	}()
	n := 0
	var first error
	for range ids {
		st, err := c.r.ReadByte()
		if err != nil {
			first = fmt.Errorf("mailbox: receive: %w", err)
			break
		}
		if err := blobStatusError(st); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if first == nil {
			n++
		}
	}
	if err := <-werr; err != nil && first == nil {
		first = err
	}
	return n, first
}

// Get returns blob id of mailbox mb (ErrNoBlob if not held), unchecked:
// the caller opens it.
func (c *BlobConn) Get(ctx context.Context, mb ID, id Hash) ([]byte, error) {
	defer c.start(ctx, opBlobGet, mb)()
	c.w.Write(id[:])
	if err := c.status(); err != nil {
		return nil, err
	}
	b := make([]byte, BlobSize)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return nil, fmt.Errorf("mailbox: receive: %w", err)
	}
	return b, nil
}

// Delete deletes blobs ids of mailbox mb and returns how many the host
// deleted.
func (c *BlobConn) Delete(ctx context.Context, mb ID, ids []Hash) (int, error) {
	if err := checkBatch(ids); err != nil {
		return 0, err
	}
	defer c.start(ctx, opBlobDelete, mb)()
	c.writeIDs(ids)
	if err := c.status(); err != nil {
		return 0, err
	}
	var nb [2]byte
	if _, err := io.ReadFull(c.r, nb[:]); err != nil {
		return 0, fmt.Errorf("mailbox: receive: %w", err)
	}
	return int(binary.BigEndian.Uint16(nb[:])), nil
}

// GetMany gets blobs ids of mailbox mb in one pipelined exchange (the
// requests go out while the blobs come back), calling got for each blob
// held, in order (blob is reused after got returns); a blob not held is
// skipped. got's error stops it.
func (c *BlobConn) GetMany(ctx context.Context, mb ID, ids []Hash, got func(i int, blob []byte) error) error {
	if len(ids) == 0 {
		return nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout + time.Duration(len(ids))*time.Second)
	}
	_ = c.st.SetDeadline(deadline)
	defer context.AfterFunc(ctx, func() { _ = c.st.Reset() })()
	werr := make(chan error, 1)
	go func() {
		for _, id := range ids {
			c.w.WriteByte(opBlobGet)
			c.w.Write(mb[:])
			if _, err := c.w.Write(id[:]); err != nil {
				werr <- err
				return
			}
		}
		werr <- c.w.Flush()
	}()
	b := make([]byte, BlobSize)
	var err error
	for i := range ids {
		var st byte
		if st, err = c.r.ReadByte(); err != nil {
			err = fmt.Errorf("mailbox: receive: %w", err)
			break
		}
		if serr := blobStatusError(st); errors.Is(serr, ErrNoBlob) {
			continue
		} else if serr != nil {
			err = serr
			break
		}
		if _, err = io.ReadFull(c.r, b); err != nil {
			err = fmt.Errorf("mailbox: receive: %w", err)
			break
		}
		if err = got(i, b); err != nil {
			break
		}
	}
	if err != nil {
		_ = c.st.Reset() // answers still on their way: the stream is done
		<-werr
		return err
	}
	return <-werr
}
