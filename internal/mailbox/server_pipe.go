package mailbox

import (
	"bufio"
	"errors"
	"io"
	"sync"

	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Pipelined deposits (issue 18). A client may send deposits one after
// another without waiting for each answer (DepositBatch does); the
// protocol already answers every request in order on its stream, so the
// n-th answer is the n-th request's and nothing on the wire changes: a
// host of this version serves a client that waits for each answer, and a
// client that pipelines gets the same answers from an older host, one
// commit each. This host takes the deposits that have already arrived
// behind the first (up to maxPipelined), stores them in one share of a
// group commit (store.MailboxStore.DepositMany), and answers them in one
// write.

// maxPipelined and maxPipelinedBytes bound the deposits of one stream
// answered together, and so what one stream makes the host hold in memory
// before a commit (no more than a page of a fetch).
const (
	maxPipelined      = 256
	maxPipelinedBytes = 1 << 20
)

// pendingDeposit is a deposit read and not yet answered.
type pendingDeposit struct {
	id     ID
	env    []byte
	status wirepb.MailboxResponse_Status // set when refused before the store
}

// nextFrame returns the request read ahead, if any, or the next frame.
func (c *serverConn) nextFrame() ([]byte, error) {
	if b := c.next; b != nil {
		c.next = nil
		return b, nil
	}
	return wire.ReadFrame(c.rd)
}

// deposits answers d and the deposits pipelined behind it that have
// already arrived. A request of another kind read ahead is kept for the
// serve loop.
func (c *serverConn) deposits(d *wirepb.MailboxDeposit) error {
	var batch []pendingDeposit
	hangUp, size := false, 0
	for {
		p, err := c.readDeposit(d)
		if err != nil {
			return err
		}
		batch = append(batch, p)
		size += len(p.env)
		if p.status == wirepb.MailboxResponse_STATUS_TOO_LARGE && p.env == nil {
			hangUp = true // its frame cannot follow: nothing after it is read
			break
		}
		if len(batch) == maxPipelined || size >= maxPipelinedBytes || c.buf.Buffered() == 0 {
			break
		}
		b, err := wire.ReadFrame(c.rd)
		if err != nil {
			return err
		}
		req, err := parseRequest(b)
		if err != nil || req.GetDeposit() == nil {
			c.next = b // the serve loop answers it (or its error) in turn
			break
		}
		d = req.GetDeposit()
	}
	c.store(batch)
	for _, p := range batch {
		if err := wire.WriteFrame(c.w, response(status(p.status))); err != nil {
			return err
		}
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	if hangUp {
		return errHangUp
	}
	return nil
}

// readDeposit reads the envelope that follows d and refuses what needs no
// store: too large, over a rate limit. A declared size over the protocol
// limit is refused without reading (p.env nil): the stream ends after the
// answer.
func (c *serverConn) readDeposit(d *wirepb.MailboxDeposit) (pendingDeposit, error) {
	p := pendingDeposit{id: ID(d.MailboxId)}
	if d.EnvelopeSize > wire.MaxEnvelopeSize {
		c.s.stats.refused.Add(1)
		p.status = wirepb.MailboxResponse_STATUS_TOO_LARGE
		return p, nil
	}
	env, err := wire.ReadFrame(c.rd)
	if err != nil {
		return p, err
	}
	if len(env) != int(d.EnvelopeSize) {
		return p, ErrMalformed
	}
	p.env = env
	switch {
	case len(env) > c.s.maxEnv:
		c.s.stats.refused.Add(1)
		c.s.log.Debug("mailboxDepositTooLarge", "mailbox", p.id.Short(), "size", len(env))
		p.status = wirepb.MailboxResponse_STATUS_TOO_LARGE
	case !c.s.limiter.allow(c.peer):
		c.s.stats.refused.Add(1)
		c.s.log.Debug("mailboxRateLimited", "peer", shortPeer(c.peer))
		p.status = wirepb.MailboxResponse_STATUS_RATE_LIMITED
	case !c.s.mbLimit.allow(string(p.id[:])):
		c.s.stats.refused.Add(1)
		c.s.log.Debug("mailboxRateLimited", "mailbox", p.id.Short())
		p.status = wirepb.MailboxResponse_STATUS_RATE_LIMITED
	}
	return p, nil
}

// store commits the deposits of batch not refused yet, together, and sets
// each one's answer.
func (c *serverConn) store(batch []pendingDeposit) {
	var ds []store.MailboxDeposit
	var idx []int
	expires := c.s.cfg.Now().Add(c.s.cfg.TTL)
	for i, p := range batch {
		if p.status != wirepb.MailboxResponse_STATUS_UNSPECIFIED {
			continue
		}
		h := HashEnvelope(p.env)
		ds = append(ds, store.MailboxDeposit{MailboxID: p.id[:], Hash: h[:], Envelope: p.env, Expires: expires})
		idx = append(idx, i)
	}
	if len(ds) == 0 {
		return
	}
	res, err := c.s.cfg.Store.DepositMany(c.s.ctx, ds, c.s.quota)
	for k, i := range idx {
		p := &batch[i]
		if err != nil {
			c.s.stats.refused.Add(1)
			p.status = wirepb.MailboxResponse_STATUS_UNAVAILABLE
			continue
		}
		r := res[k]
		switch {
		case r.Err != nil:
			c.s.stats.refused.Add(1)
		case r.Stored:
			c.s.stats.deposits.Add(1)
		default:
			c.s.stats.duplicates.Add(1)
		}
		switch {
		case errors.Is(r.Err, store.ErrMailboxFull):
			c.s.log.Info("mailboxFull", "mailbox", p.id.Short())
			p.status = wirepb.MailboxResponse_STATUS_MAILBOX_FULL
		case errors.Is(r.Err, store.ErrStorageFull):
			c.s.log.Warn("mailboxStorageFull")
			p.status = wirepb.MailboxResponse_STATUS_STORAGE_FULL
		case r.Err != nil:
			c.s.log.Warn("mailboxStoreFailed", "op", "deposit", "err", r.Err)
			p.status = wirepb.MailboxResponse_STATUS_UNAVAILABLE
		default:
			c.s.log.Debug("mailboxDeposit", "mailbox", p.id.Short(), "size", len(p.env), "new", r.Stored)
			p.status = wirepb.MailboxResponse_STATUS_OK
		}
	}
	if err != nil {
		c.s.log.Warn("mailboxStoreFailed", "op", "deposit", "err", err)
	}
}

// A stream's read and write buffers (64 KiB each, so that a page of a fetch
// or a batch of deposits goes in few writes) come from pools: most streams
// carry one deposit, and allocating them afresh cost more than the deposit.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
)

func getReader(r io.Reader) *bufio.Reader {
	b := readers.Get().(*bufio.Reader)
	b.Reset(r)
	return b
}

func getWriter(w io.Writer) *bufio.Writer {
	b := writers.Get().(*bufio.Writer)
	b.Reset(w)
	return b
}

// putBuffers returns a finished stream's buffers to the pools, holding
// nothing of the stream.
func putBuffers(r *bufio.Reader, w *bufio.Writer) {
	r.Reset(nil)
	w.Reset(nil)
	readers.Put(r)
	writers.Put(w)
}
