package channel

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/testnet"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

var _ Signer = (*keys.Identity)(nil)
var _ Signer = OwnerKey(nil)

func newOwner(t testing.TB, seed string) (OwnerKey, ed25519.PublicKey) {
	t.Helper()
	k, err := GenerateOwnerKey(testrand.New(seed))
	if err != nil {
		t.Fatal(err)
	}
	return OwnerKey(k), k.Public().(ed25519.PublicKey)
}

func chain(t testing.TB, owner Signer, pub ed25519.PublicKey, bodies ...string) []*Post {
	t.Helper()
	var posts []*Post
	var prev *Post
	for i, b := range bodies {
		p, err := NewPost(owner, pub, prev, int64(1_700_000_000_000+i*1000), Priority(i%2), []byte(b))
		if err != nil {
			t.Fatal(err)
		}
		posts = append(posts, p)
		prev = p
	}
	return posts
}

func TestChain(t *testing.T) {
	owner, pub := newOwner(t, t.Name())
	posts := chain(t, owner, pub, "genesis", "second", "third", "fourth")
	for i, p := range posts {
		q, err := ParsePost(p.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(q.Marshal(), p.Marshal()) {
			t.Fatal("round trip differs")
		}
		if err := Verify(pub, q); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if i > 0 {
			if err := VerifyNext(posts[i-1], q); err != nil {
				t.Fatalf("post %d: VerifyNext: %v", i, err)
			}
		}
	}
	// A gap (dropped post) and a fork are detected.
	if err := VerifyNext(posts[0], posts[2]); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("gap: %v", err)
	}
	fork, err := NewPost(owner, pub, posts[0], 1, PriorityAlert, []byte("other second"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyNext(fork, posts[2]); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("fork: %v", err)
	}
	if err := VerifyNext(posts[2], posts[1]); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("reorder: %v", err)
	}
	// Another owner's channel.
	other, otherPub := newOwner(t, "other")
	op := chain(t, other, otherPub, "x", "y")
	if err := Verify(pub, op[0]); !errors.Is(err, ErrWrongChannel) {
		t.Fatalf("other channel: %v", err)
	}
	if err := VerifyNext(posts[0], op[1]); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("cross-channel chain: %v", err)
	}
	// A wrong owner/ownerPub pair is refused at creation.
	if _, err := NewPost(other, pub, nil, 0, PriorityNormal, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("mismatched key: %v", err)
	}
}

func TestIdentityOwner(t *testing.T) {
	id, err := keys.GenerateIdentity(testrand.New(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	pub := id.Public().SigningKey()
	posts := chain(t, id, pub, "a", "b")
	if err := Verify(pub, posts[1]); err != nil {
		t.Fatal(err)
	}
}

func TestTamperEveryByte(t *testing.T) {
	owner, pub := newOwner(t, t.Name())
	posts := chain(t, owner, pub, "genesis", "an alert with a body")
	for _, p := range posts {
		enc := p.Marshal()
		for i := range enc {
			bad := bytes.Clone(enc)
			bad[i] ^= 0x01
			q, err := ParsePost(bad)
			if err == nil {
				err = Verify(pub, q)
			}
			if err == nil {
				t.Fatalf("byte %d flipped: accepted", i)
			}
		}
		for n := range enc {
			if _, err := ParsePost(enc[:n]); err == nil {
				t.Fatalf("truncated to %d: accepted", n)
			}
		}
		if _, err := ParsePost(append(bytes.Clone(enc), 0)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

func TestLimits(t *testing.T) {
	owner, pub := newOwner(t, t.Name())
	if _, err := NewPost(owner, pub, nil, 0, PriorityNormal, make([]byte, MaxBodySize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big body: %v", err)
	}
	if _, err := NewPost(owner, pub, nil, 0, 2, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad priority: %v", err)
	}
	p, err := NewPost(owner, pub, nil, -5, PriorityAlert, make([]byte, MaxBodySize))
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParsePost(p.Marshal())
	if err != nil || q.Timestamp != -5 || len(q.Body) != MaxBodySize {
		t.Fatalf("max post: %v", err)
	}
	genesisWithPrev := *p
	genesisWithPrev.Prev[0] = 1
	if err := Verify(pub, &genesisWithPrev); !errors.Is(err, ErrMalformed) {
		t.Fatalf("genesis with prev: %v", err)
	}
	if _, err := ParsePost(genesisWithPrev.Marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("parse genesis with prev: %v", err)
	}
}

const vectorSeed = "samizdat channel vectors v1"

type vectorPost struct {
	Body string `json:"body"`
	Post string `json:"post"` // hex
	Hash string `json:"hash"`
}

type vectorFile struct {
	Comment   string       `json:"comment"`
	Seed      string       `json:"seed"`
	OwnerPub  string       `json:"owner_public_key"`
	ChannelID string       `json:"channel_id"`
	Posts     []vectorPost `json:"posts"`
}

func buildVectors(t *testing.T) []byte {
	owner, pub := newOwner(t, vectorSeed)
	id := ID(pub)
	v := vectorFile{
		Comment: "Channel posts signed with Ed25519 and hash-chained with SHA-256. Owner key seed from testrand.New(seed). " +
			"Regenerate with: go test ./internal/crypto/channel -run TestVectors -update",
		Seed: vectorSeed, OwnerPub: hex.EncodeToString(pub), ChannelID: hex.EncodeToString(id[:]),
	}
	for _, p := range chain(t, owner, pub, "first post", "an alert", "") {
		h := p.Hash()
		v.Posts = append(v.Posts, vectorPost{string(p.Body), hex.EncodeToString(p.Marshal()), hex.EncodeToString(h[:])})
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
	var v vectorFile
	if err := json.Unmarshal(want, &v); err != nil {
		t.Fatal(err)
	}
	pub, _ := hex.DecodeString(v.OwnerPub)
	var prev *Post
	for i, vp := range v.Posts {
		b, _ := hex.DecodeString(vp.Post)
		p, err := ParsePost(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(pub, p); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if prev != nil {
			if err := VerifyNext(prev, p); err != nil {
				t.Fatalf("post %d: %v", i, err)
			}
		}
		prev = p
	}
}
