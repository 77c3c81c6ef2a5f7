package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"
)

// clone copies a session through its encoding (which is also a test of it).
func clone(t testing.TB, s *Session) *Session {
	t.Helper()
	b := s.Marshal()
	c, err := UnmarshalSession(b)
	if err != nil {
		t.Fatalf("UnmarshalSession: %v", err)
	}
	if got := c.Marshal(); !bytes.Equal(got, b) {
		t.Fatal("Marshal(Unmarshal(b)) != b")
	}
	return c
}

// expectFail checks that Decrypt fails with want and leaves s unchanged.
func expectFail(t testing.TB, s *Session, rand io.Reader, msg []byte, want error) {
	t.Helper()
	before := s.Marshal()
	pt, err := s.Decrypt(rand, msg)
	if !errors.Is(err, want) {
		t.Fatalf("Decrypt error = %v, want %v", err, want)
	}
	if pt != nil {
		t.Fatal("Decrypt returned plaintext with an error")
	}
	if !bytes.Equal(before, s.Marshal()) {
		t.Fatal("failed Decrypt changed the session")
	}
}

func TestOutOfOrderWithinBound(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	const n = 50
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = mustEncrypt(t, a, r, fmt.Sprint("m", i))
	}
	order := mrand.New(mrand.NewPCG(1, 2)).Perm(n)
	for _, i := range order {
		mustDecrypt(t, b, r, msgs[i], fmt.Sprint("m", i))
	}
	if b.SkippedKeys() != 0 {
		t.Fatalf("%d skipped keys left", b.SkippedKeys())
	}
	for _, m := range msgs {
		expectFail(t, b, r, m, ErrReplay)
	}
}

// TestOutOfOrderAcrossRatchet delivers a new chain's messages before the end
// of the previous chain (PN handling) and checks replays of both chains.
func TestOutOfOrderAcrossRatchet(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	a1 := mustEncrypt(t, a, r, "a1")
	a2 := mustEncrypt(t, a, r, "a2")
	a3 := mustEncrypt(t, a, r, "a3")
	mustDecrypt(t, b, r, a1, "a1")
	mustDecrypt(t, a, r, mustEncrypt(t, b, r, "b1"), "b1")
	a4 := mustEncrypt(t, a, r, "a4") // new chain, PN = 3
	a5 := mustEncrypt(t, a, r, "a5")
	mustDecrypt(t, b, r, a5, "a5")
	if got := b.SkippedKeys(); got != 3 { // a2, a3 and a4
		t.Fatalf("SkippedKeys = %d, want 3", got)
	}
	c := clone(t, b) // round trip mid-conversation with skipped keys
	for _, s := range []*Session{b, c} {
		mustDecrypt(t, s, r, a3, "a3")
		mustDecrypt(t, s, r, a4, "a4")
		mustDecrypt(t, s, r, a2, "a2")
		for _, m := range [][]byte{a1, a2, a3, a4, a5} {
			expectFail(t, s, r, m, ErrReplay)
		}
	}
}

func TestSkipBound(t *testing.T) {
	r := testRand(t.Name())
	cfg := Config{MaxSkip: 10}
	a, b := newPair(t, r, cfg)
	msgs := make([][]byte, 12)
	for i := range msgs {
		msgs[i] = mustEncrypt(t, a, r, fmt.Sprint(i))
	}
	// First chain (DH ratchet path): N may be at most MaxSkip.
	expectFail(t, clone(t, b), r, msgs[11], ErrTooManySkipped)
	ok := clone(t, b)
	mustDecrypt(t, ok, r, msgs[10], "10")

	// Current chain: skipping MaxSkip keys is fine, MaxSkip+1 is not.
	mustDecrypt(t, b, r, msgs[0], "0")
	for i := range 11 {
		msgs = append(msgs, mustEncrypt(t, a, r, fmt.Sprint(12+i)))
	}
	expectFail(t, clone(t, b), r, msgs[12], ErrTooManySkipped) // skips 1..11
	mustDecrypt(t, b, r, msgs[11], "11")                       // skips 1..10
	if got := b.SkippedKeys(); got != 10 {
		t.Fatalf("SkippedKeys = %d, want 10", got)
	}

	// Previous chain (PN) is bounded too.
	mustDecrypt(t, a, r, mustEncrypt(t, b, r, "reply"), "reply")
	next := mustEncrypt(t, a, r, "next chain") // PN = 23, Bob's Nr = 12
	expectFail(t, b, r, next, ErrTooManySkipped)
}

// TestHugeSkipNoHang forges a header number near 2^32 with the real header
// key: Decrypt must refuse at once, without deriving or allocating keys.
func TestHugeSkipNoHang(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{MaxSkip: HardMaxSkip * 10})
	mustDecrypt(t, b, r, mustEncrypt(t, a, r, "hi"), "hi")
	a.c.ns = maxCounter
	expectFail(t, b, r, mustEncrypt(t, a, r, "far"), ErrTooManySkipped)
	if _, err := a.Encrypt(r, []byte("x")); !errors.Is(err, ErrChainExhausted) {
		t.Fatalf("Encrypt past the counter: %v", err)
	}
	a.c.ns = 1 << 31
	expectFail(t, b, r, mustEncrypt(t, a, r, "far"), ErrTooManySkipped)
}

func TestSkippedKeysTotalBound(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{MaxSkip: 10, MaxSkippedKeys: 15})
	var msgs [][]byte
	for i := range 30 {
		msgs = append(msgs, mustEncrypt(t, a, r, fmt.Sprint(i)))
	}
	for _, i := range []int{9, 19, 29} { // skip 9 keys each time
		mustDecrypt(t, b, r, msgs[i], fmt.Sprint(i))
		if got := b.SkippedKeys(); got > 15 {
			t.Fatalf("SkippedKeys = %d > 15", got)
		}
	}
	// 27 keys were skipped, the 12 oldest (0..8 and 10..12) evicted.
	for _, i := range []int{0, 8, 10, 12} {
		expectFail(t, b, r, msgs[i], ErrReplay)
	}
	for _, i := range []int{13, 18, 20, 28} {
		mustDecrypt(t, b, r, msgs[i], fmt.Sprint(i))
	}
}

func TestSkippedChainsBound(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	var lost [][]byte
	for i := range MaxSkippedChains + 4 {
		lost = append(lost, mustEncrypt(t, a, r, fmt.Sprint("lost", i)))
		mustDecrypt(t, b, r, mustEncrypt(t, a, r, "kept"), "kept")
		mustDecrypt(t, a, r, mustEncrypt(t, b, r, "reply"), "reply")
	}
	if len(b.skipped) > MaxSkippedChains {
		t.Fatalf("%d chains stored", len(b.skipped))
	}
	// The oldest chains are forgotten (their messages no longer
	// authenticate), the newest still decrypt.
	expectFail(t, b, r, lost[0], ErrAuth)
	last := len(lost) - 1
	mustDecrypt(t, b, r, lost[last], fmt.Sprint("lost", last))
}

func TestReplay(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	m1 := mustEncrypt(t, a, r, "1")
	mustDecrypt(t, b, r, m1, "1")
	expectFail(t, b, r, m1, ErrReplay) // first message of a chain (NHKr path) replayed
	m2 := mustEncrypt(t, a, r, "2")
	mustDecrypt(t, b, r, m2, "2")
	expectFail(t, b, r, m2, ErrReplay)
	// After two more DH ratchet steps the old chain is remembered.
	for range 2 {
		mustDecrypt(t, a, r, mustEncrypt(t, b, r, "b"), "b")
		mustDecrypt(t, b, r, mustEncrypt(t, a, r, "a"), "a")
	}
	expectFail(t, b, r, m1, ErrReplay)
	expectFail(t, b, r, m2, ErrReplay)
}

// TestForwardSecrecy: once a message key has been used (or its chain moved
// on), no later state, even fully disclosed, decrypts the old ciphertexts.
func TestForwardSecrecy(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	var old [][]byte
	for round := range 4 {
		for i := range 3 {
			m := mustEncrypt(t, a, r, fmt.Sprint(round, i))
			mustDecrypt(t, b, r, m, fmt.Sprint(round, i))
			old = append(old, m)
		}
		mustDecrypt(t, a, r, mustEncrypt(t, b, r, "ack"), "ack")
	}
	stolen := clone(t, b)
	for i, m := range old {
		if pt, err := stolen.Decrypt(r, m); err == nil {
			t.Fatalf("old message %d decrypted from the current state: %q", i, pt)
		}
	}
	// The state also holds no key material of those messages: none of the
	// symmetric keys it stores equals a key that could open them.
	if stolen.SkippedKeys() != 0 {
		t.Fatalf("%d skipped keys retained", stolen.SkippedKeys())
	}
}

// TestPostCompromiseSecurity: an attacker holding a copy of Bob's state can
// follow the conversation only until Bob's next DH ratchet step (Bob
// receives from Alice and replies); after that, it decrypts nothing.
func TestPostCompromiseSecurity(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	mustDecrypt(t, b, r, mustEncrypt(t, a, r, "hello"), "hello")
	mustDecrypt(t, a, r, mustEncrypt(t, b, r, "hi"), "hi")

	attacker := clone(t, b)
	attackerRand := testRand("attacker")

	m1 := mustEncrypt(t, a, r, "before healing")
	mustDecrypt(t, attacker, attackerRand, m1, "before healing") // compromise is real
	mustDecrypt(t, b, r, m1, "before healing")
	m2 := mustEncrypt(t, b, r, "bob's new ratchet key")
	mustDecrypt(t, a, r, m2, "bob's new ratchet key")

	for i := range 3 {
		m := mustEncrypt(t, a, r, fmt.Sprint("after healing ", i))
		if pt, err := attacker.Decrypt(attackerRand, m); err == nil {
			t.Fatalf("attacker decrypted %q after Bob's DH ratchet step", pt)
		}
		mustDecrypt(t, b, r, m, fmt.Sprint("after healing ", i))
	}
	// Nor does a fresh copy of the pre-healing state.
	m := mustEncrypt(t, a, r, "later")
	if _, err := clone(t, attacker).Decrypt(attackerRand, m); err == nil {
		t.Fatal("attacker decrypted a later message")
	}
}

// TestTamperEveryByte flips each byte of a first-of-chain message and of a
// steady-state message: every variant is rejected and leaves the session
// untouched; the genuine message still decrypts afterwards.
func TestTamperEveryByte(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	first := mustEncrypt(t, a, r, "first message of the chain")
	second := mustEncrypt(t, a, r, "second message")
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{{"first", first, "first message of the chain"}, {"second", second, "second message"}} {
		for i := range tc.msg {
			for _, mask := range []byte{0x01, 0x80, 0xFF} {
				bad := bytes.Clone(tc.msg)
				bad[i] ^= mask
				before := b.Marshal()
				if pt, err := b.Decrypt(r, bad); err == nil {
					t.Fatalf("%s: byte %d ^ %#x accepted: %q", tc.name, i, mask, pt)
				}
				if !bytes.Equal(before, b.Marshal()) {
					t.Fatalf("%s: byte %d: failed Decrypt changed the session", tc.name, i)
				}
			}
		}
		for n := range tc.msg {
			if _, err := b.Decrypt(r, tc.msg[:n]); err == nil {
				t.Fatalf("%s: truncation to %d accepted", tc.name, n)
			}
		}
		if _, err := b.Decrypt(r, append(bytes.Clone(tc.msg), 0)); err == nil {
			t.Fatalf("%s: extended message accepted", tc.name)
		}
		mustDecrypt(t, b, r, tc.msg, tc.want)
	}
}

func TestDecodeErrors(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	m := mustEncrypt(t, a, r, "x")
	expectFail(t, b, r, m[:Overhead-1], ErrTruncated)
	expectFail(t, b, r, nil, ErrTruncated)
	bad := bytes.Clone(m)
	bad[0] = 2
	expectFail(t, b, r, bad, ErrVersion)
	expectFail(t, b, r, make([]byte, Overhead+3), ErrVersion)
	junk := make([]byte, Overhead+3)
	junk[0] = Version
	expectFail(t, b, r, junk, ErrAuth)
	// A message for another session.
	x, _ := newPair(t, r, Config{})
	expectFail(t, b, r, mustEncrypt(t, x, r, "x"), ErrAuth)
	mustDecrypt(t, b, r, m, "x")
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestRandomFailure(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	before := a.Marshal()
	if _, err := a.Encrypt(failingReader{}, []byte("x")); !errors.Is(err, ErrRandom) {
		t.Fatalf("Encrypt: %v", err)
	}
	if !bytes.Equal(before, a.Marshal()) {
		t.Fatal("failed Encrypt changed the session")
	}
	m := mustEncrypt(t, a, r, "x")
	expectFail(t, b, failingReader{}, m, ErrRandom) // the DH ratchet step needs randomness
	mustDecrypt(t, b, r, m, "x")
	if _, err := NewInitiator(failingReader{}, [32]byte{}, [32]byte{}, [32]byte{}, [32]byte{9}, nil, Config{}); !errors.Is(err, ErrRandom) {
		t.Fatalf("NewInitiator: %v", err)
	}
}

func TestLowOrderRatchetKey(t *testing.T) {
	r := testRand(t.Name())
	if _, err := NewInitiator(r, [32]byte{}, [32]byte{}, [32]byte{}, [32]byte{}, nil, Config{}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("NewInitiator with the zero point: %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{MaxSkip: 77, MaxSkippedKeys: 99})
	clone(t, a)
	clone(t, b) // responder before its first message
	var held [][]byte
	for i := range 6 {
		m := mustEncrypt(t, a, r, fmt.Sprint(i))
		if i%2 == 0 {
			held = append(held, m)
		} else {
			mustDecrypt(t, b, r, m, fmt.Sprint(i))
		}
	}
	mustDecrypt(t, a, r, mustEncrypt(t, b, r, "r"), "r")
	a, b = clone(t, a), clone(t, b)
	if b.Config() != (Config{MaxSkip: 77, MaxSkippedKeys: 99}) {
		t.Fatalf("config not restored: %+v", b.Config())
	}
	for j, m := range held {
		mustDecrypt(t, b, r, m, fmt.Sprint(2*j))
	}
	mustDecrypt(t, b, r, mustEncrypt(t, a, r, "after"), "after")
}
