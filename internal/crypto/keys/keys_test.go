package keys

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/testnet"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

func newID(t testing.TB, seed string) *Identity {
	t.Helper()
	id, err := GenerateIdentity(testrand.New(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestIdentityRoundTrip(t *testing.T) {
	id := newID(t, t.Name())
	b := id.Marshal()
	if len(b) != IdentitySize {
		t.Fatalf("len = %d", len(b))
	}
	id2, err := UnmarshalIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id2.Marshal(), b) || !id2.Public().Equal(id.Public()) {
		t.Fatal("round trip differs")
	}
	pb := id.Public().Marshal()
	if len(pb) != PublicIdentitySize {
		t.Fatalf("public len = %d", len(pb))
	}
	p, err := ParsePublicIdentity(pb)
	if err != nil || !p.Equal(id.Public()) || p != id.Public() {
		t.Fatalf("ParsePublicIdentity: %v", err)
	}
	for _, tc := range []struct {
		in   []byte
		want error
	}{{b[:IdentitySize-1], ErrTruncated}, {append(bytes.Clone(b), 0), ErrTooLarge}, {append([]byte{2}, b[1:]...), ErrVersion}} {
		if _, err := UnmarshalIdentity(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("UnmarshalIdentity: %v, want %v", err, tc.want)
		}
	}
	if _, err := ParsePublicIdentity(pb[:PublicIdentitySize-1]); !errors.Is(err, ErrTruncated) {
		t.Error(err)
	}
	if _, err := ParsePublicIdentity(append(bytes.Clone(pb), 0)); !errors.Is(err, ErrTooLarge) {
		t.Error(err)
	}
	for i := range pb {
		bad := bytes.Clone(pb)
		bad[i] ^= 1
		if _, err := ParsePublicIdentity(bad); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	// Swapping the DH key of one identity into another is detected.
	other := newID(t, "other").Public().Marshal()
	mixed := append(append(append([]byte{}, pb[:32]...), other[32:64]...), pb[64:]...)
	if _, err := ParsePublicIdentity(mixed); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("mixed identity: %v", err)
	}
}

func TestSignVerify(t *testing.T) {
	id := newID(t, t.Name())
	p := id.Public()
	sig := id.Sign("samizdat/test", []byte("msg"))
	if !p.Verify("samizdat/test", []byte("msg"), sig) {
		t.Fatal("valid signature rejected")
	}
	for _, tc := range []struct {
		domain, msg string
	}{{"samizdat/test2", "msg"}, {"samizdat/test", "msh"}, {"samizdat/tes", "t\x00msg"}, {"samizdat/test\x00msg", ""}} {
		if p.Verify(tc.domain, []byte(tc.msg), sig) {
			t.Errorf("Verify(%q, %q) accepted", tc.domain, tc.msg)
		}
	}
	if (PublicIdentity{}).Verify("samizdat/test", []byte("msg"), sig) || !(PublicIdentity{}).IsZero() || p.IsZero() {
		t.Fatal("zero identity")
	}
	if p.Verify("samizdat/test", []byte("msg"), sig[:63]) {
		t.Fatal("short signature accepted")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Sign with a NUL in the domain did not panic")
		}
	}()
	id.Sign("a\x00b", nil)
}

func TestECDH(t *testing.T) {
	a, b := newID(t, "a"), newID(t, "b")
	ak, _ := a.Public().DHKey()
	bk, _ := b.Public().DHKey()
	s1, err1 := a.ECDH(bk)
	s2, err2 := b.ECDH(ak)
	if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
		t.Fatal("ECDH mismatch")
	}
	if _, err := (PublicIdentity{}).DHKey(); !errors.Is(err, ErrInvalidKey) {
		t.Fatal(err)
	}
	if _, err := a.ECDH(nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatal(err)
	}
}

func TestSafetyNumber(t *testing.T) {
	a, b, c := newID(t, "a").Public(), newID(t, "b").Public(), newID(t, "c").Public()
	ab, ba := SafetyNumber(a, b), SafetyNumber(b, a)
	if ab != ba {
		t.Fatalf("not symmetric: %s vs %s", ab, ba)
	}
	if len(ab) != SafetyNumberDigits || strings.Trim(ab, "0123456789") != "" {
		t.Fatalf("bad format: %q", ab)
	}
	if ab == SafetyNumber(a, c) {
		t.Fatal("different pairs, same number")
	}
	// Each half is one identity's fingerprint.
	ac := SafetyNumber(a, c)
	fa := fingerprint(a)
	if !strings.Contains(ab, fa) || !strings.Contains(ac, fa) {
		t.Fatal("halves are not per-identity fingerprints")
	}
}

const vectorSeed = "samizdat keys vectors v1"

type vectorFile struct {
	Comment        string `json:"comment"`
	Seed           string `json:"seed"`
	IdentityA      string `json:"identity_a"` // private encoding, hex
	PublicA        string `json:"public_a"`
	IdentityB      string `json:"identity_b"`
	PublicB        string `json:"public_b"`
	SignDomain     string `json:"sign_domain"`
	SignMessage    string `json:"sign_message"`
	SignatureA     string `json:"signature_a"`
	SafetyNumberAB string `json:"safety_number_ab"`
}

func buildVectors(t *testing.T) []byte {
	r := testrand.New(vectorSeed)
	a, err := GenerateIdentity(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateIdentity(r)
	if err != nil {
		t.Fatal(err)
	}
	v := vectorFile{
		Comment: "Identities from testrand.New(seed): Ed25519 seed (32 bytes) then X25519 private key (32 bytes) each. " +
			"Regenerate with: go test ./internal/crypto/keys -run TestVectors -update",
		Seed:      vectorSeed,
		IdentityA: hex.EncodeToString(a.Marshal()), PublicA: hex.EncodeToString(a.Public().Marshal()),
		IdentityB: hex.EncodeToString(b.Marshal()), PublicB: hex.EncodeToString(b.Public().Marshal()),
		SignDomain: "samizdat/test-vector", SignMessage: "hello",
		SafetyNumberAB: SafetyNumber(a.Public(), b.Public()),
	}
	v.SignatureA = hex.EncodeToString(a.Sign(v.SignDomain, []byte(v.SignMessage)))
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
