// Package wire defines samizdat's versioned wire messages (protobuf, in
// wirepb), their size limits, the padding of plaintexts to size buckets and
// the length-prefixed framing used on streams.
//
// Every decoder here is fuzzed: it must reject truncated, oversized,
// unknown-version or malformed input with a named error and never panic.
// The package knows nothing about keys or the network; it must never log.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Version is the only wire version this code speaks.
const Version = 1

// Size limits. An envelope holds one padded text (up to MaxTextSize) plus
// the ratchet overhead and, on the first messages, the PQXDH initiation.
const (
	MaxTextSize     = 64 << 10  // longest message body in bytes
	MaxEnvelopeSize = 256 << 10 // largest envelope (and stream frame) accepted
	MaxCardSize     = 16 << 10  // largest signed contact card
	// MaxCardUpdateCards bounds the device cards one card update carries.
	MaxCardUpdateCards = 16
	MaxInviteSize      = 24 << 10 // largest decoded invite
	MessageIDSize      = 16
	// MaxAttachmentSize bounds a file's manifest inside a text message
	// (internal/media checks it further).
	MaxAttachmentSize = 48 << 10
	FrameHeaderSize   = 4 // big-endian uint32 length before each frame
)

// Errors returned by the decoders and framing.
var (
	// ErrTooLarge is returned when an input or frame exceeds its limit.
	ErrTooLarge = errors.New("wire: message too large")
	// ErrMalformed is returned when bytes do not decode as the expected message.
	ErrMalformed = errors.New("wire: malformed message")
	// ErrVersion is returned for a message of a version this code does not speak.
	ErrVersion = errors.New("wire: unsupported version")
	// ErrPadding is returned by Unpad when the padding is not well formed.
	ErrPadding = errors.New("wire: bad padding")
)

func unmarshal(b []byte, limit int, m proto.Message) error {
	if len(b) > limit {
		return ErrTooLarge
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return ErrMalformed
	}
	return nil
}

func checkVersion(v uint32) error {
	if v != Version {
		return fmt.Errorf("%w: %d", ErrVersion, v)
	}
	return nil
}

// Marshal encodes a wire message deterministically.
func Marshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		// Only possible for invalid UTF-8 in string fields, which our own
		// constructors never produce: a programmer bug.
		panic(fmt.Sprintf("wire: marshal: %v", err))
	}
	return b
}

// ParseEnvelope decodes an envelope and checks its version and id.
func ParseEnvelope(b []byte) (*wirepb.Envelope, error) {
	var e wirepb.Envelope
	if err := unmarshal(b, MaxEnvelopeSize, &e); err != nil {
		return nil, err
	}
	if err := checkVersion(e.Version); err != nil {
		return nil, err
	}
	if len(e.MessageId) != MessageIDSize || len(e.Ciphertext) == 0 {
		return nil, ErrMalformed
	}
	return &e, nil
}

// MaxReadIDs bounds the message ids of one read receipt.
const MaxReadIDs = 256

// SealedSenderSize is the size of SealedContent.Sender: a prefix of the
// sender's account key, a hint for the recipient.
const SealedSenderSize = 8

// ParseSealedContent decodes what a sealed box held: an envelope (checked
// like ParseEnvelope) and the sender hint.
func ParseSealedContent(b []byte) (*wirepb.SealedContent, *wirepb.Envelope, error) {
	var sc wirepb.SealedContent
	if err := unmarshal(b, MaxEnvelopeSize, &sc); err != nil {
		return nil, nil, err
	}
	if err := checkVersion(sc.Version); err != nil {
		return nil, nil, err
	}
	if len(sc.Sender) != SealedSenderSize {
		return nil, nil, ErrMalformed
	}
	env, err := ParseEnvelope(sc.Envelope)
	if err != nil {
		return nil, nil, err
	}
	return &sc, env, nil
}

// ParsePayload decodes a (unpadded) plaintext payload.
func ParsePayload(b []byte) (*wirepb.Payload, error) {
	var p wirepb.Payload
	if err := unmarshal(b, MaxEnvelopeSize, &p); err != nil {
		return nil, err
	}
	if err := checkVersion(p.Version); err != nil {
		return nil, err
	}
	switch body := p.Body.(type) {
	case *wirepb.Payload_Text:
		if body.Text == nil || len(body.Text.MessageId) != MessageIDSize || len(body.Text.Body) > MaxTextSize ||
			len(body.Text.Attachment) > MaxAttachmentSize {
			return nil, ErrMalformed
		}
	case *wirepb.Payload_Ack:
		if body.Ack == nil || len(body.Ack.MessageIds) == 0 {
			return nil, ErrMalformed
		}
		for _, id := range body.Ack.MessageIds {
			if len(id) != MessageIDSize {
				return nil, ErrMalformed
			}
		}
	case *wirepb.Payload_Read:
		if body.Read == nil || len(body.Read.MessageIds) == 0 || len(body.Read.MessageIds) > MaxReadIDs {
			return nil, ErrMalformed
		}
		for _, id := range body.Read.MessageIds {
			if len(id) != MessageIDSize {
				return nil, ErrMalformed
			}
		}
	case *wirepb.Payload_Group:
		if err := parseGroupControl(body.Group); err != nil {
			return nil, err
		}
	case *wirepb.Payload_Sent:
		t := body.Sent.GetText()
		if t == nil || len(body.Sent.ToAccount) == 0 || len(body.Sent.ToAccount) > 128 || len(t.MessageId) != MessageIDSize ||
			len(t.Body) > MaxTextSize || len(t.Attachment) > MaxAttachmentSize {
			return nil, ErrMalformed
		}
	case *wirepb.Payload_Card:
		if body.Card == nil || len(p.SenderCard) == 0 || len(body.Card.DeviceCards) > MaxCardUpdateCards {
			return nil, ErrMalformed
		}
		for _, c := range body.Card.DeviceCards {
			if len(c) == 0 || len(c) > MaxCardSize {
				return nil, ErrMalformed
			}
		}
	case *wirepb.Payload_Sync:
		if err := checkDeviceSync(body.Sync); err != nil {
			return nil, err
		}
	case *wirepb.Payload_History:
		if err := checkHistoryOffer(body.History); err != nil {
			return nil, err
		}
	case *wirepb.Payload_Revoked:
		if body.Revoked == nil || len(body.Revoked.List) == 0 || len(body.Revoked.List) > MaxCardSize ||
			len(body.Revoked.Signature) != 64 {
			return nil, ErrMalformed
		}
	default:
		return nil, ErrMalformed
	}
	if len(p.SenderCard) > MaxCardSize {
		return nil, ErrTooLarge
	}
	return &p, nil
}

// ParseResponse decodes a response frame.
func ParseResponse(b []byte) (*wirepb.Response, error) {
	var r wirepb.Response
	if err := unmarshal(b, MaxEnvelopeSize, &r); err != nil {
		return nil, err
	}
	if err := checkVersion(r.Version); err != nil {
		return nil, err
	}
	if len(r.MessageId) != MessageIDSize || r.Status == wirepb.Response_STATUS_UNSPECIFIED {
		return nil, ErrMalformed
	}
	if len(r.Error) > 200 {
		return nil, ErrMalformed
	}
	return &r, nil
}

// ParseSignedCard decodes the outer, signed form of a contact card. The
// signature is checked by the identity package, which knows the keys.
func ParseSignedCard(b []byte) (*wirepb.SignedCard, error) {
	var s wirepb.SignedCard
	if err := unmarshal(b, MaxCardSize, &s); err != nil {
		return nil, err
	}
	if len(s.Card) == 0 || len(s.Signature) == 0 {
		return nil, ErrMalformed
	}
	return &s, nil
}

// ParseCard decodes the inner contact card.
func ParseCard(b []byte) (*wirepb.ContactCard, error) {
	var c wirepb.ContactCard
	if err := unmarshal(b, MaxCardSize, &c); err != nil {
		return nil, err
	}
	if err := checkVersion(c.Version); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseInvite decodes the binary content of an invite link.
func ParseInvite(b []byte) (*wirepb.Invite, error) {
	var inv wirepb.Invite
	if err := unmarshal(b, MaxInviteSize, &inv); err != nil {
		return nil, err
	}
	if err := checkVersion(inv.Version); err != nil {
		return nil, err
	}
	if len(inv.SignedCard) == 0 {
		return nil, ErrMalformed
	}
	return &inv, nil
}

// ParseSessionRecord decodes a stored session record.
func ParseSessionRecord(b []byte) (*wirepb.SessionRecord, error) {
	var r wirepb.SessionRecord
	if err := unmarshal(b, 4*MaxEnvelopeSize, &r); err != nil {
		return nil, err
	}
	if err := checkVersion(r.Version); err != nil {
		return nil, err
	}
	return &r, nil
}

// WriteFrame writes one length-prefixed frame.
func WriteFrame(w io.Writer, b []byte) error {
	if len(b) > MaxEnvelopeSize {
		return ErrTooLarge
	}
	buf := make([]byte, FrameHeaderSize+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[FrameHeaderSize:], b)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one length-prefixed frame of at most MaxEnvelopeSize
// bytes. A longer announced length returns ErrTooLarge without reading or
// allocating the body; the caller must then reset the stream.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [FrameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxEnvelopeSize {
		return nil, ErrTooLarge
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}
