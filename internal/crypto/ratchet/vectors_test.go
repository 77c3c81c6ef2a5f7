package ratchet

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/testnet"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// vectorSeed seeds every random byte of the transcript (testrand: SHA-256 in
// counter mode), so the transcript is a pure function of it and of the code.
const vectorSeed = "samizdat ratchet vectors v1"

type vectorStep struct {
	Op        string `json:"op"` // "encrypt" or "decrypt"
	Party     string `json:"party"`
	Label     string `json:"label"`
	Plaintext string `json:"plaintext"`
	Message   string `json:"message"` // hex
}

type vectorFile struct {
	Comment        string       `json:"comment"`
	Seed           string       `json:"seed"`
	InitiatorState string       `json:"initiator_state"` // hex, right after NewInitiator
	ResponderState string       `json:"responder_state"` // hex, right after NewResponder
	Steps          []vectorStep `json:"steps"`
	FinalInitiator string       `json:"final_initiator_state"`
	FinalResponder string       `json:"final_responder_state"`
}

func buildVectors(t *testing.T) []byte {
	r := testrand.New(vectorSeed)
	a, b := newPair(t, r, Config{})
	v := vectorFile{
		Comment: "Double Ratchet with header encryption. Secrets, keys and nonces come from " +
			"testrand.New(seed) (SHA-256(seed || uint64be(i)) blocks) in the order the test consumes them. " +
			"Regenerate with: go test ./internal/crypto/ratchet -run TestVectors -update",
		Seed:           vectorSeed,
		InitiatorState: hex.EncodeToString(a.Marshal()),
		ResponderState: hex.EncodeToString(b.Marshal()),
	}
	parties := map[string]*Session{"alice": a, "bob": b}
	msgs := map[string][]byte{}
	plain := map[string]string{}
	enc := func(party, label string) {
		pt := party + " says " + label
		m := mustEncrypt(t, parties[party], r, pt)
		msgs[label], plain[label] = m, pt
		v.Steps = append(v.Steps, vectorStep{"encrypt", party, label, pt, hex.EncodeToString(m)})
	}
	dec := func(party, label string) {
		mustDecrypt(t, parties[party], r, msgs[label], plain[label])
		v.Steps = append(v.Steps, vectorStep{"decrypt", party, label, plain[label], hex.EncodeToString(msgs[label])})
	}
	enc("alice", "a1")
	enc("alice", "a2")
	enc("alice", "a3")
	dec("bob", "a1")   // Bob's first DH ratchet step
	dec("bob", "a3")   // out of order: a2 skipped
	enc("bob", "b1")   // Bob's first sending chain
	dec("alice", "b1") // Alice's DH ratchet step
	enc("alice", "a4") // new chain, PN = 3
	dec("bob", "a4")   // DH ratchet step
	dec("bob", "a2")   // skipped key from the previous chain
	enc("bob", "b2")
	enc("bob", "b3")
	dec("alice", "b3") // DH ratchet step, b2 skipped
	dec("alice", "b2")
	enc("alice", "")
	dec("bob", "")
	v.FinalInitiator = hex.EncodeToString(a.Marshal())
	v.FinalResponder = hex.EncodeToString(b.Marshal())
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
	// The recorded states must load and re-encode identically.
	var v vectorFile
	if err := json.Unmarshal(want, &v); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{v.InitiatorState, v.ResponderState, v.FinalInitiator, v.FinalResponder} {
		b, _ := hex.DecodeString(h)
		s, err := UnmarshalSession(b)
		if err != nil || !bytes.Equal(s.Marshal(), b) {
			t.Fatalf("recorded state does not round-trip: %v", err)
		}
	}
}
