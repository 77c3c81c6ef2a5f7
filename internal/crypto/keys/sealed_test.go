package keys

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"testing/cryptotest"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/testnet"
)

func sealPair(t testing.TB) (*Identity, *Identity) {
	t.Helper()
	r := testrand.New("sealed test")
	a, err := GenerateIdentity(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateIdentity(r)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestSealRoundTrip(t *testing.T) {
	a, b := sealPair(t)
	for _, n := range []int{0, 1, 100, 4096} {
		content := bytes.Repeat([]byte{0x5a}, n)
		box, err := Seal(b.Public(), content)
		if err != nil {
			t.Fatal(err)
		}
		if len(box) != n+SealedOverhead {
			t.Errorf("box of %d bytes is %d bytes, want %d", n, len(box), n+SealedOverhead)
		}
		got, err := b.Unseal(box)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("Unseal(%d) = %x, %v", n, got, err)
		}
		if _, err := a.Unseal(box); !errors.Is(err, ErrSealed) {
			t.Errorf("another identity opened the box: %v", err)
		}
		// Two boxes of the same content are unlinkable.
		box2, _ := Seal(b.Public(), content)
		if bytes.Equal(box, box2) {
			t.Error("sealing twice gave the same box")
		}
	}
}

func TestSealHidesKeys(t *testing.T) {
	a, b := sealPair(t)
	box, err := Seal(b.Public(), a.Public().Marshal())
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := a.Public(), b.Public()
	for _, k := range [][]byte{pb.signing[:], pb.dh[:], pa.signing[:]} {
		if bytes.Contains(box, k) {
			t.Error("a public key is visible in the box")
		}
	}
}

func TestUnsealRejects(t *testing.T) {
	_, b := sealPair(t)
	box, err := Seal(b.Public(), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range box {
		bad := bytes.Clone(box)
		bad[i] ^= 0x01
		if _, err := b.Unseal(bad); !errors.Is(err, ErrSealed) {
			t.Fatalf("flipping byte %d: %v", i, err)
		}
	}
	for _, bad := range [][]byte{nil, {SealedVersion}, box[:SealedOverhead-1], box[:len(box)-1], append(bytes.Clone(box), 0)} {
		if _, err := b.Unseal(bad); !errors.Is(err, ErrSealed) {
			t.Errorf("Unseal(%d bytes) = %v", len(bad), err)
		}
	}
	if _, err := Seal(PublicIdentity{}, []byte("x")); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Seal to the zero identity: %v", err)
	}
}

// TestSealedVector pins the box format: with crypto/rand made
// deterministic, sealing gives the committed bytes, and they open.
func TestSealedVector(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1)
	_, b := sealPair(t)
	box, err := Seal(b.Public(), []byte("samizdat sealed box vector"))
	if err != nil {
		t.Fatal(err)
	}
	want := testnet.Golden(t, filepath.Join("testdata", "sealed.hex"), []byte(hex.EncodeToString(box)+"\n"), *update)
	raw, err := hex.DecodeString(string(bytes.TrimSpace(want)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Unseal(raw); err != nil || string(got) != "samizdat sealed box vector" {
		t.Fatalf("Unseal(vector) = %q, %v", got, err)
	}
}

func FuzzUnseal(f *testing.F) {
	_, b := sealPair(f)
	box, _ := Seal(b.Public(), []byte("seed"))
	f.Add(box)
	f.Add([]byte{SealedVersion})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := b.Unseal(in)
		if err == nil && bytes.Equal(in, box) && string(out) != "seed" {
			t.Fatal("wrong content")
		}
	})
}
