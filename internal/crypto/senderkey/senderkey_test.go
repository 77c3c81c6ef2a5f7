package senderkey

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/testnet"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

func newSenderReceiver(t testing.TB, seed string, cfg Config) (*Sender, *Receiver) {
	t.Helper()
	s, err := New(testrand.New(seed), 7)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDistribution(s.Distribution().Marshal())
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func mustEncrypt(t testing.TB, s *Sender, pt string) []byte {
	t.Helper()
	m, err := s.Encrypt([]byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustDecrypt(t testing.TB, r *Receiver, m []byte, want string) {
	t.Helper()
	pt, err := r.Decrypt(m)
	if err != nil || string(pt) != want {
		t.Fatalf("Decrypt = %q, %v; want %q", pt, err, want)
	}
}

func expectFail(t testing.TB, r *Receiver, m []byte, want error) {
	t.Helper()
	before := r.Marshal()
	if _, err := r.Decrypt(m); !errors.Is(err, want) {
		t.Fatalf("Decrypt error = %v, want %v", err, want)
	}
	if !bytes.Equal(before, r.Marshal()) {
		t.Fatal("failed Decrypt changed the receiver")
	}
}

func TestOutOfOrderAndReplay(t *testing.T) {
	s, r := newSenderReceiver(t, t.Name(), Config{})
	var msgs [][]byte
	for i := range 40 {
		msgs = append(msgs, mustEncrypt(t, s, fmt.Sprint(i)))
	}
	for _, i := range mrand.New(mrand.NewPCG(3, 4)).Perm(len(msgs)) {
		mustDecrypt(t, r, msgs[i], fmt.Sprint(i))
	}
	if r.SkippedKeys() != 0 {
		t.Fatalf("%d skipped keys left", r.SkippedKeys())
	}
	for _, m := range msgs {
		expectFail(t, r, m, ErrReplay)
	}
}

func TestSkipBound(t *testing.T) {
	s, r := newSenderReceiver(t, t.Name(), Config{MaxSkip: 5})
	var msgs [][]byte
	for i := range 20 {
		msgs = append(msgs, mustEncrypt(t, s, fmt.Sprint(i)))
	}
	expectFail(t, r, msgs[6], ErrTooManySkipped)
	mustDecrypt(t, r, msgs[5], "5")
	mustDecrypt(t, r, msgs[10], "10")
	mustDecrypt(t, r, msgs[15], "15") // 13 keys skipped in all, at most 10 kept
	if got := r.SkippedKeys(); got != 10 {
		t.Fatalf("SkippedKeys = %d, want 10", got)
	}
	expectFail(t, r, msgs[0], ErrReplay) // evicted
	mustDecrypt(t, r, msgs[14], "14")
}

func TestLateJoinerAndEpochs(t *testing.T) {
	rnd := testrand.New(t.Name())
	s, err := New(rnd, 1)
	if err != nil {
		t.Fatal(err)
	}
	early := mustEncrypt(t, s, "before you joined")
	r, err := NewReceiver(s.Distribution(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	expectFail(t, r, early, ErrReplay)
	mustDecrypt(t, r, mustEncrypt(t, s, "welcome"), "welcome")

	s2, err := s.Rotate(rnd)
	if err != nil || s2.Epoch() != 2 {
		t.Fatalf("Rotate: %v, epoch %d", err, s2.Epoch())
	}
	expectFail(t, r, mustEncrypt(t, s2, "new epoch"), ErrEpoch)
	r2, _ := NewReceiver(s2.Distribution(), Config{})
	expectFail(t, r2, mustEncrypt(t, s, "old epoch"), ErrEpoch)
	if ep, it, err := PeekEpoch(mustEncrypt(t, s2, "x")); err != nil || ep != 2 || it != 1 {
		t.Fatalf("PeekEpoch = %d, %d, %v", ep, it, err)
	}
}

func TestForgeryAndTampering(t *testing.T) {
	s, r := newSenderReceiver(t, t.Name(), Config{})
	m := mustEncrypt(t, s, "authentic")
	for i := range m {
		bad := bytes.Clone(m)
		bad[i] ^= 0x01
		before := r.Marshal()
		if _, err := r.Decrypt(bad); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
		if !bytes.Equal(before, r.Marshal()) {
			t.Fatalf("byte %d: failed Decrypt changed the receiver", i)
		}
	}
	for n := range m {
		if _, err := r.Decrypt(m[:n]); err == nil {
			t.Fatalf("truncated to %d: accepted", n)
		}
	}
	// Another member holding the chain key but not the signing key cannot
	// impersonate the sender.
	impostor, _ := New(testrand.New("impostor"), 7)
	impostor.chainKey, impostor.iteration = r.chainKey, r.iteration
	expectFail(t, r, mustEncrypt(t, impostor, "forged"), ErrBadSignature)
	mustDecrypt(t, r, m, "authentic")
}

func TestMarshalRoundTrip(t *testing.T) {
	s, r := newSenderReceiver(t, t.Name(), Config{MaxSkip: 50})
	var held [][]byte
	for i := range 6 {
		m := mustEncrypt(t, s, fmt.Sprint(i))
		if i%2 == 0 {
			held = append(held, m)
		} else {
			mustDecrypt(t, r, m, fmt.Sprint(i))
		}
	}
	sb, rb := s.Marshal(), r.Marshal()
	s2, err := UnmarshalSender(sb)
	if err != nil || !bytes.Equal(s2.Marshal(), sb) {
		t.Fatalf("sender round trip: %v", err)
	}
	r2, err := UnmarshalReceiver(rb)
	if err != nil || !bytes.Equal(r2.Marshal(), rb) {
		t.Fatalf("receiver round trip: %v", err)
	}
	for j, m := range held[:2] {
		mustDecrypt(t, r2, m, fmt.Sprint(2*j))
	}
	mustDecrypt(t, r2, mustEncrypt(t, s2, "after"), "after")
}

func TestEncryptLimits(t *testing.T) {
	s, r := newSenderReceiver(t, t.Name(), Config{})
	if _, err := s.Encrypt(make([]byte, MaxPlaintextSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	mustDecrypt(t, r, mustEncrypt(t, s, string(make([]byte, MaxPlaintextSize))), string(make([]byte, MaxPlaintextSize)))
	expectFail(t, r, make([]byte, MaxMessageSize+1), ErrVersion)
	big := make([]byte, MaxMessageSize+1)
	big[0] = Version
	expectFail(t, r, big, ErrTooLarge)
	s.iteration = maxCounter + 1
	if _, err := s.Encrypt(nil); !errors.Is(err, ErrChainExhausted) {
		t.Fatalf("exhausted: %v", err)
	}
}

const vectorSeed = "samizdat senderkey vectors v1"

type vectorMessage struct {
	Plaintext string `json:"plaintext"`
	Message   string `json:"message"`
}

type vectorFile struct {
	Comment       string          `json:"comment"`
	Seed          string          `json:"seed"`
	SenderState   string          `json:"sender_state"`
	Distribution  string          `json:"distribution"`
	Messages      []vectorMessage `json:"messages"` // in sending order
	DeliveryOrder []int           `json:"delivery_order"`
	FinalReceiver string          `json:"final_receiver_state"`
	RotatedSender string          `json:"rotated_sender_state"`
}

func buildVectors(t *testing.T) []byte {
	rnd := testrand.New(vectorSeed)
	s, err := New(rnd, 1)
	if err != nil {
		t.Fatal(err)
	}
	v := vectorFile{
		Comment: "Sender keys: ChaCha20-Poly1305 + Ed25519, HMAC-SHA-256 chain. Randomness from testrand.New(seed). " +
			"Regenerate with: go test ./internal/crypto/senderkey -run TestVectors -update",
		Seed: vectorSeed, SenderState: hex.EncodeToString(s.Marshal()),
		Distribution: hex.EncodeToString(s.Distribution().Marshal()),
	}
	r, err := NewReceiver(s.Distribution(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for _, pt := range []string{"first", "second", "third", ""} {
		m := mustEncrypt(t, s, pt)
		msgs = append(msgs, m)
		v.Messages = append(v.Messages, vectorMessage{pt, hex.EncodeToString(m)})
	}
	v.DeliveryOrder = []int{0, 2, 3, 1}
	for _, i := range v.DeliveryOrder {
		mustDecrypt(t, r, msgs[i], v.Messages[i].Plaintext)
	}
	v.FinalReceiver = hex.EncodeToString(r.Marshal())
	s2, err := s.Rotate(rnd)
	if err != nil {
		t.Fatal(err)
	}
	v.RotatedSender = hex.EncodeToString(s2.Marshal())
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestVectors(t *testing.T) {
	got := buildVectors(t)
	path := filepath.Join("testdata", "vectors.json")
	testnet.Golden(t, path, got, *update)
}
