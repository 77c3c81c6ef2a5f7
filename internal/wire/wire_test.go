package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

func sampleEnvelope() *wirepb.Envelope {
	return &wirepb.Envelope{Version: Version, MessageId: bytes.Repeat([]byte{1}, MessageIDSize), Ciphertext: []byte("ct")}
}

func TestPadBuckets(t *testing.T) {
	cases := []struct{ n, want int }{
		{0, 256}, {255, 256}, {256, 512}, {1000, 1024}, {BigBucket - 1, BigBucket}, {BigBucket, 2 * BigBucket},
	}
	for _, c := range cases {
		if got := PaddedSize(c.n); got != c.want {
			t.Errorf("PaddedSize(%d) = %d, want %d", c.n, got, c.want)
		}
		b := bytes.Repeat([]byte{0}, c.n) // zeros are the hardest content for unpadding
		p := Pad(b)
		if len(p) != c.want {
			t.Fatalf("len(Pad(%d)) = %d", c.n, len(p))
		}
		u, err := Unpad(p)
		if err != nil || !bytes.Equal(u, b) {
			t.Fatalf("Unpad(Pad(%d zero bytes)) = %d bytes, %v", c.n, len(u), err)
		}
	}
}

func TestUnpadRejects(t *testing.T) {
	for _, b := range [][]byte{nil, {}, {0, 0}, {1, 2, 3}, {0x80, 1}} {
		if _, err := Unpad(b); !errors.Is(err, ErrPadding) {
			t.Errorf("Unpad(%x) err = %v, want ErrPadding", b, err)
		}
	}
}

func TestParseEnvelope(t *testing.T) {
	good := Marshal(sampleEnvelope())
	if _, err := ParseEnvelope(good); err != nil {
		t.Fatal(err)
	}
	v2 := sampleEnvelope()
	v2.Version = 2
	short := sampleEnvelope()
	short.MessageId = short.MessageId[:3]
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"version", Marshal(v2), ErrVersion},
		{"short id", Marshal(short), ErrMalformed},
		{"garbage", []byte{0xff, 0xff, 0xff}, ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"oversized", make([]byte, MaxEnvelopeSize+1), ErrTooLarge},
		{"empty", nil, ErrVersion},
	}
	for _, tc := range tests {
		if _, err := ParseEnvelope(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, make([]byte, MaxEnvelopeSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized write: %v", err)
	}
	b, err := ReadFrame(&buf)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadFrame = %q, %v", b, err)
	}
	if _, err := ReadFrame(&buf); !errors.Is(err, io.EOF) {
		t.Fatalf("at end: %v", err)
	}
	// A huge announced length is refused before allocating.
	if _, err := ReadFrame(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 9, 1})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

// fuzzDecoder checks that a decoder never panics and that whatever it
// accepts re-encodes to a message that decodes to the same value.
func fuzzDecoder[M proto.Message](f *testing.F, seeds [][]byte, parse func([]byte) (M, error)) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parse(b)
		if err != nil {
			return
		}
		again, err := parse(Marshal(m))
		if err != nil {
			t.Fatalf("re-encoded message rejected: %v", err)
		}
		if !proto.Equal(m, again) {
			t.Fatal("round trip changed the message")
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	fuzzDecoder(f, [][]byte{Marshal(sampleEnvelope())}, ParseEnvelope)
}

func FuzzParseSealedContent(f *testing.F) {
	seed := Marshal(&wirepb.SealedContent{Version: Version, Sender: make([]byte, SealedSenderSize), Envelope: Marshal(sampleEnvelope())})
	fuzzDecoder(f, [][]byte{seed}, func(b []byte) (*wirepb.SealedContent, error) {
		sc, _, err := ParseSealedContent(b)
		return sc, err
	})
}

func TestParseSealedContent(t *testing.T) {
	env := Marshal(sampleEnvelope())
	good := &wirepb.SealedContent{Version: Version, Sender: make([]byte, SealedSenderSize), Envelope: env}
	if _, e, err := ParseSealedContent(Marshal(good)); err != nil || e.Version != Version {
		t.Fatalf("ParseSealedContent(good) = %v", err)
	}
	for name, bad := range map[string]*wirepb.SealedContent{
		"short sender": {Version: Version, Sender: make([]byte, 31), Envelope: env},
		"no envelope":  {Version: Version, Sender: make([]byte, SealedSenderSize)},
		"version 2":    {Version: 2, Sender: make([]byte, SealedSenderSize), Envelope: env},
	} {
		if _, _, err := ParseSealedContent(Marshal(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	id := bytes.Repeat([]byte{7}, MessageIDSize)
	seeds := [][]byte{
		Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Text{Text: &wirepb.Text{MessageId: id, Body: "hi"}}}),
		Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Ack{Ack: &wirepb.Ack{MessageIds: [][]byte{id}}}}),
		Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Read{Read: &wirepb.Read{MessageIds: [][]byte{id}}}}),
		Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Sent{Sent: &wirepb.SentCopy{ToAccount: "a", Text: &wirepb.Text{MessageId: id, Body: "hi"}}}}),
		Marshal(&wirepb.Payload{Version: Version, SenderCard: []byte{1}, Body: &wirepb.Payload_Card{Card: &wirepb.CardUpdate{DeviceCards: [][]byte{{2}}}}}),
		Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Sync{Sync: &wirepb.DeviceSync{AtUnixMs: 1, Origin: "p",
			Item: &wirepb.DeviceSync_Read{Read: &wirepb.SyncReadState{Account: "a", MessageIds: [][]byte{id}}}}}}),
	}
	fuzzDecoder(f, seeds, ParsePayload)
}

func FuzzParseResponse(f *testing.F) {
	seed := Marshal(&wirepb.Response{Version: Version, MessageId: make([]byte, MessageIDSize), Status: wirepb.Response_STATUS_OK, Ack: []byte{1}})
	fuzzDecoder(f, [][]byte{seed}, ParseResponse)
}

func FuzzParseCard(f *testing.F) {
	seed := Marshal(&wirepb.ContactCard{Version: Version, Name: "alice", Devices: []*wirepb.Device{{PeerId: "p", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}}})
	fuzzDecoder(f, [][]byte{seed}, ParseCard)
}

func FuzzParseSignedCard(f *testing.F) {
	fuzzDecoder(f, [][]byte{Marshal(&wirepb.SignedCard{Card: []byte{1}, Signature: []byte{2}})}, ParseSignedCard)
}

func FuzzParseInvite(f *testing.F) {
	fuzzDecoder(f, [][]byte{Marshal(&wirepb.Invite{Version: Version, SignedCard: []byte{1}})}, ParseInvite)
}

func FuzzParseSessionRecord(f *testing.F) {
	seed := Marshal(&wirepb.SessionRecord{Version: Version, Sessions: []*wirepb.SessionEntry{{Ratchet: []byte{1}}}})
	fuzzDecoder(f, [][]byte{seed}, ParseSessionRecord)
}

func FuzzUnpad(f *testing.F) {
	f.Add(Pad([]byte("hello")))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := Unpad(b)
		if err != nil {
			return
		}
		if len(u) >= len(b) || b[len(u)] != 0x80 {
			t.Fatal("unpad returned a bad slice")
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteFrame(&buf, []byte("x"))
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ReadFrame(bytes.NewReader(b))
	})
}

func TestParseReadReceipt(t *testing.T) {
	id := bytes.Repeat([]byte{7}, MessageIDSize)
	ok := Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Read{Read: &wirepb.Read{MessageIds: [][]byte{id, id}}}})
	if p, err := ParsePayload(ok); err != nil || len(p.GetRead().MessageIds) != 2 {
		t.Fatalf("ParsePayload(read) = %v, %v", p, err)
	}
	many := make([][]byte, MaxReadIDs+1)
	for i := range many {
		many[i] = id
	}
	for name, bad := range map[string]*wirepb.Read{
		"empty":    {},
		"short id": {MessageIds: [][]byte{id[:5]}},
		"too many": {MessageIds: many},
	} {
		b := Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Read{Read: bad}})
		if _, err := ParsePayload(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseSentCopy(t *testing.T) {
	id := bytes.Repeat([]byte{7}, MessageIDSize)
	ok := Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Sent{Sent: &wirepb.SentCopy{ToAccount: "acct", Text: &wirepb.Text{MessageId: id, Body: "hi"}}}})
	if p, err := ParsePayload(ok); err != nil || p.GetSent().GetText().Body != "hi" {
		t.Fatalf("ParsePayload(sent copy) = %v, %v", p, err)
	}
	for name, bad := range map[string]*wirepb.SentCopy{
		"no text":    {ToAccount: "acct"},
		"no account": {Text: &wirepb.Text{MessageId: id}},
		"short id":   {ToAccount: "acct", Text: &wirepb.Text{MessageId: id[:3]}},
	} {
		b := Marshal(&wirepb.Payload{Version: Version, Body: &wirepb.Payload_Sent{Sent: bad}})
		if _, err := ParsePayload(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseCardUpdate(t *testing.T) {
	ok := Marshal(&wirepb.Payload{Version: Version, SenderCard: []byte{1}, Body: &wirepb.Payload_Card{Card: &wirepb.CardUpdate{DeviceCards: [][]byte{{2}}}}})
	if p, err := ParsePayload(ok); err != nil || len(p.GetCard().DeviceCards) != 1 {
		t.Fatalf("ParsePayload(card update) = %v, %v", p, err)
	}
	many := make([][]byte, MaxCardUpdateCards+1)
	for i := range many {
		many[i] = []byte{1}
	}
	for name, bad := range map[string]*wirepb.Payload{
		"no card":        {Version: Version, Body: &wirepb.Payload_Card{Card: &wirepb.CardUpdate{}}},
		"empty device":   {Version: Version, SenderCard: []byte{1}, Body: &wirepb.Payload_Card{Card: &wirepb.CardUpdate{DeviceCards: [][]byte{{}}}}},
		"too many":       {Version: Version, SenderCard: []byte{1}, Body: &wirepb.Payload_Card{Card: &wirepb.CardUpdate{DeviceCards: many}}},
		"oversized card": {Version: Version, SenderCard: []byte{1}, Body: &wirepb.Payload_Card{Card: &wirepb.CardUpdate{DeviceCards: [][]byte{make([]byte, MaxCardSize+1)}}}},
	} {
		if _, err := ParsePayload(Marshal(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
