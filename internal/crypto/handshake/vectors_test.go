package handshake

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/crypto/ratchet"
	"github.com/samizdat-im/samizdat/internal/testnet"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

const vectorSeed = "samizdat pqxdh vectors v1"

type vectorMessage struct {
	From      string `json:"from"`
	Plaintext string `json:"plaintext"`
	Message   string `json:"message"` // hex
}

type vectorHandshake struct {
	Name                string          `json:"name"`
	Bundle              string          `json:"bundle"`     // hex, as sent to the initiator
	Initiation          string          `json:"initiation"` // hex
	InitiatorSession    string          `json:"initiator_session"`
	ResponderSession    string          `json:"responder_session"`
	ResponderPrekeysAft string          `json:"responder_prekeys_after"`
	Messages            []vectorMessage `json:"messages"` // in delivery order
}

type vectorFile struct {
	Comment           string            `json:"comment"`
	Seed              string            `json:"seed"`
	InitiatorIdentity string            `json:"initiator_identity"` // hex, private encoding
	ResponderIdentity string            `json:"responder_identity"`
	ResponderPrekeys  string            `json:"responder_prekeys"`
	Handshakes        []vectorHandshake `json:"handshakes"`
}

func buildVectors(t *testing.T) []byte {
	r := testrand.New(vectorSeed)
	alice, bob := newParty(t, r, 0), newParty(t, r, 1)
	v := vectorFile{
		Comment: "PQXDH (X25519, SHA-256, ML-KEM-768) followed by header-encrypted Double Ratchet messages. " +
			"All randomness comes from testrand.New(seed) in the order the test consumes it. " +
			"Regenerate with: go test ./internal/crypto/handshake -run TestVectors -update",
		Seed:              vectorSeed,
		InitiatorIdentity: hex.EncodeToString(alice.id.Marshal()),
		ResponderIdentity: hex.EncodeToString(bob.id.Marshal()),
		ResponderPrekeys:  hex.EncodeToString(bob.pk.Marshal()),
	}
	for _, tc := range []struct {
		name    string
		oneTime bool
	}{{"one-time prekeys", true}, {"last-resort KEM prekey only", false}} {
		bundle := bob.pk.Bundle(tc.oneTime).Marshal()
		parsed, err := ParseBundle(bundle)
		if err != nil {
			t.Fatal(err)
		}
		in, as, err := Initiate(r, alice.id, parsed, ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		hs := vectorHandshake{Name: tc.name, Bundle: hex.EncodeToString(bundle), Initiation: hex.EncodeToString(in.Marshal())}
		hs.InitiatorSession = hex.EncodeToString(as.Marshal())
		pin, err := ParseInitiation(in.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		bs, err := Respond(bob.id, bob.pk, pin, ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		hs.ResponderSession = hex.EncodeToString(bs.Marshal())
		hs.ResponderPrekeysAft = hex.EncodeToString(bob.pk.Marshal())
		send := func(from string, s *ratchet.Session, pt string) []byte {
			m, err := s.Encrypt(r, []byte(pt))
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		recv := func(from string, s *ratchet.Session, m []byte, pt string) {
			got, err := s.Decrypt(r, m)
			if err != nil || string(got) != pt {
				t.Fatalf("%s: Decrypt %q: %q, %v", tc.name, pt, got, err)
			}
			hs.Messages = append(hs.Messages, vectorMessage{from, pt, hex.EncodeToString(m)})
		}
		a1 := send("alice", as, "first message, sent with the initiation")
		a2 := send("alice", as, "second message")
		recv("alice", bs, a2, "second message") // out of order
		recv("alice", bs, a1, "first message, sent with the initiation")
		b1 := send("bob", bs, "reply")
		recv("bob", as, b1, "reply")
		a3 := send("alice", as, "after the DH ratchet step")
		recv("alice", bs, a3, "after the DH ratchet step")
		v.Handshakes = append(v.Handshakes, hs)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestVectors(t *testing.T) {
	got := buildVectors(t)
	path := filepath.Join("testdata", "vectors.json")
	want := testnet.Golden(t, path, got, *update)
	// Every recorded encoding parses and re-encodes identically.
	var v vectorFile
	if err := json.Unmarshal(want, &v); err != nil {
		t.Fatal(err)
	}
	for _, hs := range v.Handshakes {
		bb, _ := hex.DecodeString(hs.Bundle)
		if b, err := ParseBundle(bb); err != nil || !bytes.Equal(b.Marshal(), bb) {
			t.Fatalf("%s: bundle: %v", hs.Name, err)
		}
		ib, _ := hex.DecodeString(hs.Initiation)
		if i, err := ParseInitiation(ib); err != nil || !bytes.Equal(i.Marshal(), ib) {
			t.Fatalf("%s: initiation: %v", hs.Name, err)
		}
		pb, _ := hex.DecodeString(hs.ResponderPrekeysAft)
		if p, err := UnmarshalPrekeys(pb); err != nil || !bytes.Equal(p.Marshal(), pb) {
			t.Fatalf("%s: prekeys: %v", hs.Name, err)
		}
	}
}
