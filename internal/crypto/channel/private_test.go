package channel

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func TestSealBody(t *testing.T) {
	key, err := GenerateBodyKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := [IDSize]byte{1}
	sealed, err := SealBody(rand.Reader, key, id, 7, []byte("siren at 05:10"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != SealOverhead+len("siren at 05:10") {
		t.Fatalf("sealed size %d", len(sealed))
	}
	pt, err := OpenBody(key, id, 7, sealed)
	if err != nil || !bytes.Equal(pt, []byte("siren at 05:10")) {
		t.Fatalf("open: %q, %v", pt, err)
	}
	other, _ := GenerateBodyKey(rand.Reader)
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	for name, try := range map[string]func() ([]byte, error){
		"wrong key":     func() ([]byte, error) { return OpenBody(other, id, 7, sealed) },
		"other seq":     func() ([]byte, error) { return OpenBody(key, id, 8, sealed) },
		"other channel": func() ([]byte, error) { return OpenBody(key, [IDSize]byte{2}, 7, sealed) },
		"tampered":      func() ([]byte, error) { return OpenBody(key, id, 7, tampered) },
		"short":         func() ([]byte, error) { return OpenBody(key, id, 7, sealed[:10]) },
		"bad key size":  func() ([]byte, error) { return OpenBody(key[:5], id, 7, sealed) },
	} {
		if _, err := try(); !errors.Is(err, ErrBodyKey) {
			t.Errorf("%s: %v, want ErrBodyKey", name, err)
		}
	}
}
