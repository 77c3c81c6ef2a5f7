package mailbox

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Version is the only mailbox protocol version this code speaks.
const Version = 1

// Limits of the protocol.
const (
	// MaxMessageSize bounds a request or response message (envelopes travel
	// in frames of their own, up to wire.MaxEnvelopeSize).
	MaxMessageSize = 16 << 10
	// MaxPageItems bounds the envelopes in one page.
	MaxPageItems = 256
	// MaxPageBytes bounds the envelope bytes of one page (a page holds at
	// least one envelope, whatever its size).
	MaxPageBytes = 4 << 20
	// MaxDeleteHashes bounds the hashes in one delete request.
	MaxDeleteHashes = 256
	// DefaultPageSize is the page size used when a caller asks for 0.
	DefaultPageSize = 100
)

// Errors of the mailbox protocol. Every refusal by a host wraps ErrRefused
// and, when it has one, the specific error below, so a caller can tell "this
// host said no" (try another host, or later) from a network failure.
var (
	// ErrRefused is wrapped by every error that reports a host's refusal.
	ErrRefused = errors.New("mailbox: refused by the host")
	// ErrTooLarge is returned by Deposit for an envelope larger than
	// wire.MaxEnvelopeSize (before sending) or than the host accepts.
	ErrTooLarge = errors.New("mailbox: envelope too large")
	// ErrQuotaFull is returned by Deposit when the mailbox, or the host as a
	// whole, has no room left; the message says which. Try another host.
	ErrQuotaFull = errors.New("mailbox: quota full")
	// ErrRateLimited is returned when the host limits this peer's request
	// rate: retry later.
	ErrRateLimited = errors.New("mailbox: rate limited, retry later")
	// ErrUnauthorized is returned by OpenSession, Fetch and Delete when the
	// host does not accept the proof of mailbox ownership.
	ErrUnauthorized = errors.New("mailbox: not authorized for this mailbox")
	// ErrUnavailable is returned when the host failed temporarily (its
	// storage, typically): retry later or elsewhere.
	ErrUnavailable = errors.New("mailbox: host temporarily unavailable")
	// ErrVersion is returned when the other side speaks another version of
	// the mailbox protocol.
	ErrVersion = errors.New("mailbox: unsupported protocol version")
	// ErrMalformed is returned when the other side sends a message that
	// does not decode or breaks the protocol (a broken or malicious peer).
	ErrMalformed = errors.New("mailbox: malformed message")
	// ErrClosed is returned by a Session after Close.
	ErrClosed = errors.New("mailbox: session closed")
)

func unmarshal(b []byte, m proto.Message) error {
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%w: %d-byte message", ErrMalformed, len(b))
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return ErrMalformed
	}
	return nil
}

func checkVersion(v uint32) error {
	if v == 0 {
		// No version at all (an empty or foreign message), not another one.
		return fmt.Errorf("%w: no version", ErrMalformed)
	}
	if v != Version {
		return fmt.Errorf("%w: %d", ErrVersion, v)
	}
	return nil
}

// parseRequest decodes and validates a request. A request of another
// version returns ErrVersion, so that the host can say so before hanging
// up.
func parseRequest(b []byte) (*wirepb.MailboxRequest, error) {
	var r wirepb.MailboxRequest
	if err := unmarshal(b, &r); err != nil {
		return nil, err
	}
	if err := checkVersion(r.Version); err != nil {
		return nil, err
	}
	switch op := r.Op.(type) {
	case *wirepb.MailboxRequest_Deposit:
		d := op.Deposit
		if d == nil || len(d.MailboxId) != IDSize || d.EnvelopeSize == 0 {
			return nil, ErrMalformed
		}
	case *wirepb.MailboxRequest_Challenge:
		if op.Challenge == nil {
			return nil, ErrMalformed
		}
	case *wirepb.MailboxRequest_Auth:
		a := op.Auth
		if a == nil || len(a.PublicKey) != PublicKeySize || len(a.Signature) != SignatureSize {
			return nil, ErrMalformed
		}
	case *wirepb.MailboxRequest_List:
		if op.List == nil || op.List.Limit > MaxPageItems {
			return nil, ErrMalformed
		}
	case *wirepb.MailboxRequest_Delete:
		d := op.Delete
		if d == nil || len(d.Hashes) == 0 || len(d.Hashes) > MaxDeleteHashes {
			return nil, ErrMalformed
		}
		for _, h := range d.Hashes {
			if len(h) != HashSize {
				return nil, ErrMalformed
			}
		}
	default:
		return nil, ErrMalformed
	}
	return &r, nil
}

// parseResponse decodes and validates a response.
func parseResponse(b []byte) (*wirepb.MailboxResponse, error) {
	var r wirepb.MailboxResponse
	if err := unmarshal(b, &r); err != nil {
		return nil, err
	}
	if err := checkVersion(r.Version); err != nil {
		return nil, err
	}
	if _, ok := wirepb.MailboxResponse_Status_name[int32(r.Status)]; !ok || r.Status == wirepb.MailboxResponse_STATUS_UNSPECIFIED {
		return nil, ErrMalformed
	}
	switch body := r.Body.(type) {
	case nil:
	case *wirepb.MailboxResponse_Challenge:
		if body.Challenge == nil || len(body.Challenge.Nonce) != NonceSize {
			return nil, ErrMalformed
		}
	case *wirepb.MailboxResponse_Page:
		p := body.Page
		if p == nil || len(p.Items) > MaxPageItems {
			return nil, ErrMalformed
		}
		for _, it := range p.Items {
			if it == nil || (len(it.Hash) != 0 && len(it.Hash) != HashSize) || it.EnvelopeSize == 0 || it.EnvelopeSize > wire.MaxEnvelopeSize {
				return nil, ErrMalformed
			}
		}
	case *wirepb.MailboxResponse_Deleted:
		if body.Deleted == nil || body.Deleted.Count > MaxDeleteHashes {
			return nil, ErrMalformed
		}
	default:
		return nil, ErrMalformed
	}
	return &r, nil
}

// statusError maps a refusal to the package errors.
func statusError(s wirepb.MailboxResponse_Status) error {
	switch s {
	case wirepb.MailboxResponse_STATUS_OK:
		return nil
	case wirepb.MailboxResponse_STATUS_TOO_LARGE:
		return fmt.Errorf("%w: %w", ErrRefused, ErrTooLarge)
	case wirepb.MailboxResponse_STATUS_MAILBOX_FULL:
		return fmt.Errorf("%w: %w: the mailbox holds all the host allows", ErrRefused, ErrQuotaFull)
	case wirepb.MailboxResponse_STATUS_STORAGE_FULL:
		return fmt.Errorf("%w: %w: the host's storage is full", ErrRefused, ErrQuotaFull)
	case wirepb.MailboxResponse_STATUS_RATE_LIMITED:
		return fmt.Errorf("%w: %w", ErrRefused, ErrRateLimited)
	case wirepb.MailboxResponse_STATUS_UNAUTHORIZED:
		return fmt.Errorf("%w: %w", ErrRefused, ErrUnauthorized)
	case wirepb.MailboxResponse_STATUS_BAD_VERSION:
		return fmt.Errorf("%w: %w", ErrRefused, ErrVersion)
	case wirepb.MailboxResponse_STATUS_UNAVAILABLE:
		return fmt.Errorf("%w: %w", ErrRefused, ErrUnavailable)
	case wirepb.MailboxResponse_STATUS_BAD_REQUEST:
		return fmt.Errorf("%w: the host found our request malformed", ErrRefused)
	}
	return fmt.Errorf("%w: status %d", ErrMalformed, s)
}

func request(r *wirepb.MailboxRequest) []byte {
	r.Version = Version
	return wire.Marshal(r)
}

func response(r *wirepb.MailboxResponse) []byte {
	r.Version = Version
	return wire.Marshal(r)
}
