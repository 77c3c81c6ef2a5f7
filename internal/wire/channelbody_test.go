package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/channel"
	"github.com/samizdat-im/samizdat/internal/testnet"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/channelbody.json")

// channelBodyVector is a post carrying a file, signed by a fixed owner key.
type channelBodyVector struct {
	Comment    string `json:"comment"`
	OwnerSeed  string `json:"owner_seed"`
	Text       string `json:"text"`
	Attachment string `json:"attachment"`
	Body       string `json:"body"`
	Post       string `json:"post"`
}

func buildChannelBodyVector(t *testing.T) []byte {
	seed := sha256.Sum256([]byte("samizdat channel body vectors v1"))
	owner := ed25519.NewKeyFromSeed(seed[:])
	att := bytes.Repeat([]byte{0xa5, 0x01}, 40) // stands for a manifest: opaque here
	body := MarshalChannelBody("the river at dawn", att)
	p, err := channel.NewPost(channel.OwnerKey(owner), owner.Public().(ed25519.PublicKey), nil, 1_700_000_000_000, channel.PriorityNormal, body)
	if err != nil {
		t.Fatal(err)
	}
	v := channelBodyVector{
		Comment:   "A channel post carrying a file: body = 0x00 || ChannelBody; the owner's signature covers it. Regenerate with: go test ./internal/wire -run TestChannelBodyVector -update",
		OwnerSeed: hex.EncodeToString(seed[:]), Text: "the river at dawn", Attachment: hex.EncodeToString(att),
		Body: hex.EncodeToString(body), Post: hex.EncodeToString(p.Marshal()),
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return append(b, '\n')
}

func TestChannelBodyVector(t *testing.T) {
	want := testnet.Golden(t, filepath.Join("testdata", "channelbody.json"), buildChannelBodyVector(t), *updateVectors)
	var v channelBodyVector
	if err := json.Unmarshal(want, &v); err != nil {
		t.Fatal(err)
	}
	seed, _ := hex.DecodeString(v.OwnerSeed)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	raw, _ := hex.DecodeString(v.Post)
	p, err := channel.ParsePost(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := channel.Verify(pub, p); err != nil {
		t.Fatal(err)
	}
	text, att, err := ParseChannelBody(p.Body)
	if err != nil || text != v.Text || hex.EncodeToString(att) != v.Attachment {
		t.Fatalf("ParseChannelBody = %q, %x, %v", text, att, err)
	}
	// The signature covers the file: a changed manifest byte is refused.
	bad := bytes.Clone(raw)
	bad[channel.HeaderSize+len(p.Body)-1] ^= 1
	if q, err := channel.ParsePost(bad); err != nil || channel.Verify(pub, q) != channel.ErrBadSignature {
		t.Fatalf("a post with its attachment changed: parse %v, verify %v", err, channel.Verify(pub, q))
	}
}

func TestChannelBody(t *testing.T) {
	// A text post's body is its text, unchanged.
	if b := MarshalChannelBody("hello", nil); string(b) != "hello" {
		t.Fatalf("text body %q", b)
	}
	for name, c := range map[string]struct {
		b    []byte
		text string
		att  bool
		err  error
	}{
		"text":                 {b: []byte("plain"), text: "plain"},
		"empty":                {b: nil, text: ""},
		"not utf8":             {b: []byte{0xff, 0xfe}, err: ErrMalformed},
		"file":                 {b: MarshalChannelBody("cap", []byte{1, 2, 3}), text: "cap", att: true},
		"file, no caption":     {b: MarshalChannelBody("", []byte{9}), att: true},
		"marker only":          {b: []byte{ChannelBodyMarker}, err: ErrVersion},
		"garbage":              {b: []byte{ChannelBodyMarker, 0xff, 0xff}, err: ErrMalformed},
		"version 2":            {b: append([]byte{ChannelBodyMarker}, Marshal(&wirepb.ChannelBody{Version: 2, Attachment: []byte{1}})...), err: ErrVersion},
		"no attachment":        {b: append([]byte{ChannelBodyMarker}, Marshal(&wirepb.ChannelBody{Version: Version, Text: "x"})...), err: ErrMalformed},
		"attachment too large": {b: append([]byte{ChannelBodyMarker}, Marshal(&wirepb.ChannelBody{Version: Version, Attachment: make([]byte, MaxAttachmentSize+1)})...), err: ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			text, att, err := ParseChannelBody(c.b)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || text != c.text || (att != nil) != c.att {
				t.Fatalf("got %q %x %v", text, att, err)
			}
		})
	}
}

func FuzzParseChannelBody(f *testing.F) {
	f.Add([]byte("text"))
	f.Add(MarshalChannelBody("cap", []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		text, att, err := ParseChannelBody(b)
		if err != nil {
			return
		}
		// What parses re-encodes to a body that parses the same.
		t2, a2, err := ParseChannelBody(MarshalChannelBody(text, att))
		if err != nil || t2 != text || !bytes.Equal(a2, att) {
			t.Fatalf("round trip: %q %x %v", t2, a2, err)
		}
	})
}
