package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestConversation(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	if b.CanEncrypt() {
		t.Fatal("responder can encrypt before its first message")
	}
	if _, err := b.Encrypt(r, []byte("x")); !errors.Is(err, ErrNoSendingChain) {
		t.Fatalf("responder Encrypt before receiving: %v", err)
	}
	for round := range 5 {
		for i := range round + 1 {
			msg := fmt.Sprintf("a->b %d/%d", round, i)
			mustDecrypt(t, b, r, mustEncrypt(t, a, r, msg), msg)
		}
		for i := range round + 1 {
			msg := fmt.Sprintf("b->a %d/%d", round, i)
			mustDecrypt(t, a, r, mustEncrypt(t, b, r, msg), msg)
		}
	}
	if a.SkippedKeys() != 0 || b.SkippedKeys() != 0 {
		t.Fatalf("skipped keys left: %d %d", a.SkippedKeys(), b.SkippedKeys())
	}
}

func TestEmptyAndMaxPlaintext(t *testing.T) {
	r := testRand(t.Name())
	a, b := newPair(t, r, Config{})
	mustDecrypt(t, b, r, mustEncrypt(t, a, r, ""), "")
	big := bytes.Repeat([]byte{7}, MaxPlaintextSize)
	m, err := a.Encrypt(r, big)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := b.Decrypt(r, m)
	if err != nil || !bytes.Equal(pt, big) {
		t.Fatalf("max plaintext: %v", err)
	}
	if _, err := a.Encrypt(r, append(big, 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized plaintext: %v", err)
	}
	if _, err := b.Decrypt(r, make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized message: %v", err)
	}
}
