package senderkey

import (
	"crypto/rand"
	"errors"
	"testing"
)

func TestVerifySignature(t *testing.T) {
	s, err := New(rand.Reader, 3)
	if err != nil {
		t.Fatal(err)
	}
	s.Encrypt([]byte("first"))
	msg, err := s.Encrypt([]byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	if e, it, err := VerifySignature(s.SigningKey(), msg); err != nil || e != 3 || it != 1 {
		t.Fatalf("VerifySignature = %d, %d, %v", e, it, err)
	}
	other, _ := New(rand.Reader, 3)
	if _, _, err := VerifySignature(other.SigningKey(), msg); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: %v", err)
	}
	msg[HeaderSize] ^= 1
	if _, _, err := VerifySignature(s.SigningKey(), msg); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if _, _, err := VerifySignature(s.SigningKey(), msg[:5]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}
