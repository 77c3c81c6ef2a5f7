package mailbox

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// DefaultTimeout bounds one client call when ctx has no deadline.
const DefaultTimeout = 30 * time.Second

// Opener opens streams to peers: *p2p.Node is one.
type Opener interface {
	OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error)
}

// Item is one envelope fetched from a mailbox.
type Item struct {
	Hash     Hash // SHA-256 of Envelope, checked on receipt; pass it to Delete
	Envelope []byte
}

// clientConn is the client end of one stream.
type clientConn struct {
	st p2p.Stream
	w  *bufio.Writer
}

func dial(ctx context.Context, o Opener, server string) (*clientConn, error) {
	st, err := o.OpenStream(ctx, server, Protocol)
	if err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	return &clientConn{st: st, w: bufio.NewWriterSize(st, 64<<10)}, nil
}

// call sends a request (and the frames that follow it) and reads the
// response, within ctx. A refusal is returned as an error along with the
// response; a broken stream is reset.
func (c *clientConn) call(ctx context.Context, req *wirepb.MailboxRequest, extra []byte) (*wirepb.MailboxResponse, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	_ = c.st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.st.Reset() })
	defer stop()
	resp, err := c.roundTrip(req, extra)
	if err != nil {
		_ = c.st.Reset()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("mailbox: %w", ctx.Err())
		}
		return nil, err
	}
	if err := statusError(resp.Status); err != nil {
		return resp, err
	}
	return resp, nil
}

func (c *clientConn) roundTrip(req *wirepb.MailboxRequest, extra []byte) (*wirepb.MailboxResponse, error) {
	if err := wire.WriteFrame(c.w, request(req)); err != nil {
		return nil, fmt.Errorf("mailbox: send: %w", err)
	}
	if extra != nil {
		if err := wire.WriteFrame(c.w, extra); err != nil {
			return nil, fmt.Errorf("mailbox: send: %w", err)
		}
	}
	if err := c.w.Flush(); err != nil {
		return nil, fmt.Errorf("mailbox: send: %w", err)
	}
	b, err := wire.ReadFrame(c.st)
	if errors.Is(err, wire.ErrTooLarge) {
		return nil, fmt.Errorf("%w: oversized response", ErrMalformed)
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox: receive: %w", err)
	}
	return parseResponse(b)
}

func (c *clientConn) close() error { return c.st.Close() }

// Deposit hands envelope to the mailbox host server for mailbox id and
// returns nil once the host has stored it durably (or held it already). A
// refusal wraps ErrRefused and one of ErrTooLarge, ErrQuotaFull,
// ErrRateLimited or ErrUnavailable; an envelope over wire.MaxEnvelopeSize is
// refused with ErrTooLarge before anything is sent.
func Deposit(ctx context.Context, o Opener, server string, id ID, envelope []byte) error {
	n, err := DepositBatch(ctx, o, server, id, [][]byte{envelope})
	if n == 1 {
		return nil
	}
	return err
}

// DepositBatch deposits envelopes for one mailbox in order over one stream,
// and returns how many the host accepted: envelopes[:n] are stored. It
// stops at the first refusal or error, which it returns (see Deposit).
// The deposits are pipelined (sent without waiting for each answer), so
// some after the n-th may have been stored too: a host keeps one copy of
// an envelope, so depositing them again is safe.
func DepositBatch(ctx context.Context, o Opener, server string, id ID, envelopes [][]byte) (n int, err error) {
	for _, e := range envelopes {
		if len(e) == 0 {
			return 0, fmt.Errorf("%w: empty envelope", ErrMalformed)
		}
		if len(e) > wire.MaxEnvelopeSize {
			return 0, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(e), wire.MaxEnvelopeSize)
		}
	}
	if len(envelopes) == 0 {
		return 0, nil
	}
	c, err := dial(ctx, o, server)
	if err != nil {
		return 0, err
	}
	// Pipelined: every deposit is sent at once, the answers read as they
	// come (client_pipe.go).
	if n, err = c.depositPipelined(ctx, id, envelopes); err != nil {
		return n, err
	}
	return n, c.close()
}

// Session is an authenticated stream to one mailbox on one host: the owner
// pages through its envelopes and deletes those it has processed. It is not
// safe for concurrent use.
type Session struct {
	c     *clientConn
	id    ID
	after uint64
	done  bool
}

// OpenSession opens a stream to server and proves ownership of the mailbox
// of key. A host that does not accept the proof gives ErrUnauthorized.
func OpenSession(ctx context.Context, o Opener, server string, key ed25519.PrivateKey) (*Session, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("mailbox: bad private key size %d", len(key))
	}
	c, err := dial(ctx, o, server)
	if err != nil {
		return nil, err
	}
	s, err := openSession(ctx, c, server, key)
	if err != nil {
		_ = c.st.Reset()
		return nil, err
	}
	return s, nil
}

func openSession(ctx context.Context, c *clientConn, server string, key ed25519.PrivateKey) (*Session, error) {
	resp, err := c.call(ctx, &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Challenge{Challenge: &wirepb.MailboxChallengeRequest{}}}, nil)
	if err != nil {
		return nil, err
	}
	ch, ok := resp.Body.(*wirepb.MailboxResponse_Challenge)
	if !ok {
		return nil, fmt.Errorf("%w: no challenge in answer", ErrMalformed)
	}
	pub, sig := signProof(key, server, ch.Challenge.Nonce)
	resp, err = c.call(ctx, &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Auth{Auth: &wirepb.MailboxAuth{PublicKey: pub, Signature: sig}}}, nil)
	if err != nil {
		return nil, err
	}
	if resp.Body != nil {
		return nil, fmt.Errorf("%w: unexpected body in auth answer", ErrMalformed)
	}
	return &Session{c: c, id: IDFromPublicKey(pub)}, nil
}

// ID is the mailbox of the session.
func (s *Session) ID() ID { return s.id }

// Next returns the next page of at most pageSize envelopes (0 means
// DefaultPageSize; more than MaxPageItems is capped), oldest first, and
// whether more follow. Envelopes whose bytes do not match their hash are
// an error (ErrMalformed): a broken or malicious host.
func (s *Session) Next(ctx context.Context, pageSize int) (items []Item, more bool, err error) {
	if s.c == nil {
		return nil, false, ErrClosed
	}
	if s.done {
		return nil, false, nil
	}
	pageSize = min(max(pageSize, 0), MaxPageItems)
	resp, err := s.c.call(ctx, &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_List{List: &wirepb.MailboxList{
		After: s.after, Limit: uint32(pageSize),
	}}}, nil)
	if err != nil {
		return nil, false, s.fail(err)
	}
	pb, ok := resp.Body.(*wirepb.MailboxResponse_Page)
	if !ok {
		return nil, false, s.fail(fmt.Errorf("%w: no page in answer", ErrMalformed))
	}
	page := pb.Page
	if page.Next < s.after || (len(page.Items) == 0 && page.More) {
		return nil, false, s.fail(fmt.Errorf("%w: page cursor goes back", ErrMalformed))
	}
	items = make([]Item, 0, len(page.Items))
	for _, it := range page.Items {
		env, err := wire.ReadFrame(s.c.st)
		if err != nil {
			return nil, false, s.fail(fmt.Errorf("mailbox: receive: %w", err))
		}
		h := HashEnvelope(env)
		if len(env) != int(it.EnvelopeSize) || (len(it.Hash) > 0 && Hash(it.Hash) != h) {
			return nil, false, s.fail(fmt.Errorf("%w: envelope does not match its hash", ErrMalformed))
		}
		items = append(items, Item{Hash: h, Envelope: env})
	}
	s.after = page.Next
	s.done = !page.More
	return items, page.More, nil
}

// Delete deletes envelopes of the mailbox by hash (after the messages they
// carry are stored and acknowledged) and returns how many the host
// deleted; hashes it does not hold (deleted or expired already) are not an
// error.
func (s *Session) Delete(ctx context.Context, hashes []Hash) (int, error) {
	if s.c == nil {
		return 0, ErrClosed
	}
	total := 0
	for len(hashes) > 0 {
		k := min(len(hashes), MaxDeleteHashes)
		req := &wirepb.MailboxDelete{Hashes: make([][]byte, k)}
		for i := range k {
			req.Hashes[i] = hashes[i][:]
		}
		hashes = hashes[k:]
		resp, err := s.c.call(ctx, &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Delete{Delete: req}}, nil)
		if err != nil {
			return total, s.fail(err)
		}
		d, ok := resp.Body.(*wirepb.MailboxResponse_Deleted)
		if !ok || int(d.Deleted.Count) > k {
			return total, s.fail(fmt.Errorf("%w: bad delete answer", ErrMalformed))
		}
		total += int(d.Deleted.Count)
	}
	return total, nil
}

// fail ends the session after an error the stream cannot recover from.
func (s *Session) fail(err error) error {
	if s.c != nil {
		_ = s.c.st.Reset()
		s.c = nil
	}
	return err
}

// Close ends the session. Later calls return ErrClosed.
func (s *Session) Close() error {
	if s.c == nil {
		return nil
	}
	err := s.c.close()
	s.c = nil
	return err
}

// Fetch returns every envelope the host holds for the mailbox of key,
// oldest first, paging pageSize at a time (see Session.Next). It does not
// delete them: call Delete once their messages are safely stored.
func Fetch(ctx context.Context, o Opener, server string, key ed25519.PrivateKey, pageSize int) ([]Item, error) {
	s, err := OpenSession(ctx, o, server, key)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var all []Item
	for {
		items, more, err := s.Next(ctx, pageSize)
		if err != nil {
			return all, err
		}
		all = append(all, items...)
		if !more {
			return all, nil
		}
	}
}

// Delete deletes envelopes by hash from the mailbox of key on server (see
// Session.Delete).
func Delete(ctx context.Context, o Opener, server string, key ed25519.PrivateKey, hashes []Hash) (int, error) {
	s, err := OpenSession(ctx, o, server, key)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return s.Delete(ctx, hashes)
}

// Probe checks that server answers the mailbox protocol: it asks for a
// fetch challenge (which costs the host a nonce and tells it nothing) and
// hangs up.
func Probe(ctx context.Context, o Opener, server string) error {
	c, err := dial(ctx, o, server)
	if err != nil {
		return err
	}
	resp, err := c.call(ctx, &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Challenge{Challenge: &wirepb.MailboxChallengeRequest{}}}, nil)
	if err != nil {
		return err
	}
	if _, ok := resp.Body.(*wirepb.MailboxResponse_Challenge); !ok {
		_ = c.st.Reset()
		return fmt.Errorf("%w: no challenge in answer", ErrMalformed)
	}
	return c.close()
}
