package mailbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

func seedRequests() [][]byte {
	h := bytes.Repeat([]byte{7}, HashSize)
	reqs := []*wirepb.MailboxRequest{
		{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.MailboxDeposit{MailboxId: h, EnvelopeSize: 1024}}},
		{Op: &wirepb.MailboxRequest_Challenge{Challenge: &wirepb.MailboxChallengeRequest{}}},
		{Op: &wirepb.MailboxRequest_Auth{Auth: &wirepb.MailboxAuth{PublicKey: h, Signature: append(h, h...)}}},
		{Op: &wirepb.MailboxRequest_List{List: &wirepb.MailboxList{After: 42, Limit: 100}}},
		{Op: &wirepb.MailboxRequest_Delete{Delete: &wirepb.MailboxDelete{Hashes: [][]byte{h, h}}}},
	}
	var out [][]byte
	for _, r := range reqs {
		out = append(out, request(r))
	}
	bad := &wirepb.MailboxRequest{Version: 2, Op: reqs[1].Op}
	out = append(out, wire.Marshal(bad), nil, []byte{0xff, 0xff})
	return out
}

func seedResponses() [][]byte {
	h := bytes.Repeat([]byte{9}, HashSize)
	resps := []*wirepb.MailboxResponse{
		{Status: wirepb.MailboxResponse_STATUS_OK},
		{Status: wirepb.MailboxResponse_STATUS_MAILBOX_FULL},
		{Status: wirepb.MailboxResponse_STATUS_OK, Body: &wirepb.MailboxResponse_Challenge{Challenge: &wirepb.MailboxChallenge{Nonce: h}}},
		{Status: wirepb.MailboxResponse_STATUS_OK, Body: &wirepb.MailboxResponse_Page{Page: &wirepb.MailboxPage{
			Items: []*wirepb.MailboxItem{{Hash: h, EnvelopeSize: 1000}}, Next: 3, More: true,
		}}},
		{Status: wirepb.MailboxResponse_STATUS_OK, Body: &wirepb.MailboxResponse_Deleted{Deleted: &wirepb.MailboxDeleted{Count: 2}}},
	}
	var out [][]byte
	for _, r := range resps {
		out = append(out, response(r))
	}
	return append(out, nil, []byte{0x10, 0x63})
}

// FuzzParseRequest checks that the request decoder never panics, and that
// what it accepts re-encodes to an equal, still valid request.
func FuzzParseRequest(f *testing.F) {
	for _, s := range seedRequests() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		again, err := parseRequest(wire.Marshal(r))
		if err != nil || !proto.Equal(r, again) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzParseResponse is FuzzParseRequest for responses.
func FuzzParseResponse(f *testing.F) {
	for _, s := range seedResponses() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseResponse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		again, err := parseResponse(wire.Marshal(r))
		if err != nil || !proto.Equal(r, again) {
			t.Fatalf("round trip: %v", err)
		}
		_ = statusError(r.Status)
	})
}

func frame(b []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	return append(out, b...)
}

// TestBadFramesResetStream sends broken input on raw streams: each one is
// reset (or answered with a refusal and closed), and the server keeps
// serving.
func TestBadFramesResetStream(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	c := r.client(t)
	server := r.node.PeerID()
	id := bytes.Repeat([]byte{1}, IDSize)
	deposit := func(size uint32) []byte {
		return request(&wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.MailboxDeposit{MailboxId: id, EnvelopeSize: size}}})
	}
	oversized := binary.BigEndian.AppendUint32(nil, wire.MaxEnvelopeSize+1)
	cases := map[string][]byte{
		"garbage":                  frame([]byte("this is not protobuf \xff\xff\xff")),
		"oversized frame header":   append(oversized, 1, 2, 3),
		"oversized message":        frame(bytes.Repeat([]byte{0}, MaxMessageSize+1)),
		"empty request":            frame(nil),
		"truncated frame":          []byte{0, 0, 1, 0, 1, 2},
		"envelope size mismatch":   append(frame(deposit(10)), frame([]byte("12345"))...),
		"envelope frame too large": append(frame(deposit(5)), oversized...),
		"short mailbox id": frame(request(&wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.MailboxDeposit{
			MailboxId: id[:5], EnvelopeSize: 1,
		}}})),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			st, err := c.OpenStream(testCtx(t), server, Protocol)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Reset()
			if _, err := st.Write(in); err != nil {
				t.Fatal(err)
			}
			if name == "truncated frame" {
				st.CloseWrite()
			}
			if b, err := wire.ReadFrame(st); err == nil {
				t.Fatalf("server answered %x", b)
			}
			// The server still serves.
			if err := Deposit(testCtx(t), c, server, ID(id), []byte(name)); err != nil {
				t.Fatalf("after %s: %v", name, err)
			}
		})
	}

	t.Run("unknown version", func(t *testing.T) {
		cc, err := dial(testCtx(t), c, server)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.st.Reset()
		b := wire.Marshal(&wirepb.MailboxRequest{Version: 2, Op: &wirepb.MailboxRequest_Challenge{Challenge: &wirepb.MailboxChallengeRequest{}}})
		if err := wire.WriteFrame(cc.st, b); err != nil {
			t.Fatal(err)
		}
		resp, err := wire.ReadFrame(cc.st)
		if err != nil {
			t.Fatal(err)
		}
		r, err := parseResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		if err := statusError(r.Status); !errors.Is(err, ErrVersion) {
			t.Fatalf("status %v: %v", r.Status, err)
		}
	})

	t.Run("announced envelope over the limit", func(t *testing.T) {
		cc, err := dial(testCtx(t), c, server)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.st.Reset()
		_, err = cc.call(testCtx(t), &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.MailboxDeposit{
			MailboxId: id, EnvelopeSize: wire.MaxEnvelopeSize + 1,
		}}}, nil)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("response version checked", func(t *testing.T) {
		b := wire.Marshal(&wirepb.MailboxResponse{Version: 3, Status: wirepb.MailboxResponse_STATUS_OK})
		if _, err := parseResponse(b); !errors.Is(err, ErrVersion) {
			t.Fatalf("err = %v", err)
		}
	})
}
