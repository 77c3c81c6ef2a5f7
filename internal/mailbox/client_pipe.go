package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// depositPipelined sends every envelope's deposit without waiting for the
// answers, and reads the answers, in order, as they come (see
// server_pipe.go: the protocol answers each request in order on its
// stream, so the n-th answer is the n-th deposit's). It returns how many of
// the first envelopes were accepted and the first refusal or error; after
// one, the stream is reset (deposits after it may have been stored too:
// the host keeps one copy of an envelope, so sending it again is safe).
func (c *clientConn) depositPipelined(ctx context.Context, id ID, envelopes [][]byte) (n int, err error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	_ = c.st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.st.Reset() })
	defer stop()
	werr := make(chan error, 1)
	send := func() {
		for _, e := range envelopes {
			req := request(&wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.MailboxDeposit{
				MailboxId: id[:], EnvelopeSize: uint32(len(e)),
			}}})
			if err := wire.WriteFrame(c.w, req); err != nil {
				werr <- err
				return
			}
			if err := wire.WriteFrame(c.w, e); err != nil {
				werr <- err
				return
			}
		}
		werr <- c.w.Flush()
	}
	if len(envelopes) == 1 {
		send() // nothing to overlap: no goroutine
	} else {
		go send()
	}
	for n < len(envelopes) {
		if err = c.readDepositAnswer(); err != nil {
			break
		}
		n++
	}
	if err != nil {
		_ = c.st.Reset()
		<-werr
		if ctx.Err() != nil && !errors.Is(err, ErrRefused) {
			err = fmt.Errorf("mailbox: %w", ctx.Err())
		}
		return n, err
	}
	if err := <-werr; err != nil {
		_ = c.st.Reset()
		return n, fmt.Errorf("mailbox: send: %w", err)
	}
	return n, nil
}

// readDepositAnswer reads one answer to a deposit: nil for accepted.
func (c *clientConn) readDepositAnswer() error {
	b, err := wire.ReadFrame(c.st)
	if errors.Is(err, wire.ErrTooLarge) {
		return fmt.Errorf("%w: oversized response", ErrMalformed)
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("mailbox: receive: %w", err)
	}
	resp, err := parseResponse(b)
	if err != nil {
		return err
	}
	if err := statusError(resp.Status); err != nil {
		return err
	}
	if resp.Body != nil {
		return fmt.Errorf("%w: unexpected body in deposit answer", ErrMalformed)
	}
	return nil
}
