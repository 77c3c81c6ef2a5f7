package mailbox

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

func fetchAll(t *testing.T, c Opener, server string, key ed25519.PrivateKey, pageSize int) []Item {
	t.Helper()
	items, err := Fetch(testCtx(t), c, server, key, pageSize)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return items
}

func TestIDAndProof(t *testing.T) {
	key := mustKey(t)
	pub := key.Public().(ed25519.PublicKey)
	id := IDFromPublicKey(pub)
	if id != KeyID(key) {
		t.Fatal("KeyID differs from IDFromPublicKey")
	}
	h := HashEnvelope(append([]byte(idDomain), pub...))
	if id != ID(h) {
		t.Fatal("id is not SHA-256(domain || key)")
	}
	nonce := bytes.Repeat([]byte{1}, NonceSize)
	p, sig := signProof(key, "server", nonce)
	if got, ok := verifyProof("server", nonce, p, sig); !ok || got != id {
		t.Fatal("valid proof refused")
	}
	for name, tc := range map[string]struct {
		server string
		nonce  []byte
	}{
		"other server": {"server2", nonce},
		"other nonce":  {"server", bytes.Repeat([]byte{2}, NonceSize)},
		"no nonce":     {"server", nil},
	} {
		if _, ok := verifyProof(tc.server, tc.nonce, p, sig); ok {
			t.Errorf("%s: proof accepted", name)
		}
	}
}

func TestDepositFetchDelete(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	alice, bob := r.client(t), r.client(t)
	server := r.node.PeerID()
	key := mustKey(t)
	id := KeyID(key)
	var sent [][]byte
	for i := range 5 {
		e := envelope(fmt.Sprint("msg ", i), 1000+i)
		sent = append(sent, e)
		if err := Deposit(testCtx(t), alice, server, id, e); err != nil {
			t.Fatalf("Deposit %d: %v", i, err)
		}
	}
	items := fetchAll(t, bob, server, key, 2)
	if len(items) != len(sent) {
		t.Fatalf("fetched %d, want %d", len(items), len(sent))
	}
	var hashes []Hash
	for i, it := range items {
		if !bytes.Equal(it.Envelope, sent[i]) || it.Hash != HashEnvelope(sent[i]) {
			t.Fatalf("item %d differs (order or content)", i)
		}
		hashes = append(hashes, it.Hash)
	}
	n, err := Delete(testCtx(t), bob, server, key, hashes[:3])
	if err != nil || n != 3 {
		t.Fatalf("Delete = %d, %v", n, err)
	}
	// Deleting again is fine: nothing left to delete.
	if n, err := Delete(testCtx(t), bob, server, key, hashes[:3]); err != nil || n != 0 {
		t.Fatalf("Delete again = %d, %v", n, err)
	}
	items = fetchAll(t, bob, server, key, 0)
	if len(items) != 2 || !bytes.Equal(items[0].Envelope, sent[3]) {
		t.Fatalf("after delete: %d items", len(items))
	}
	// Another mailbox sees nothing of this one.
	if items := fetchAll(t, bob, server, mustKey(t), 0); len(items) != 0 {
		t.Fatalf("other mailbox fetched %d items", len(items))
	}
}

func TestSessionPaging(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	c := r.client(t)
	key := mustKey(t)
	var envs [][]byte
	for i := range 7 {
		envs = append(envs, envelope(fmt.Sprint("page ", i), 300))
	}
	if n, err := DepositBatch(testCtx(t), c, r.node.PeerID(), KeyID(key), envs); err != nil || n != 7 {
		t.Fatalf("DepositBatch = %d, %v", n, err)
	}
	s, err := OpenSession(testCtx(t), c, r.node.PeerID(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sizes []int
	for {
		items, more, err := s.Next(testCtx(t), 3)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(items))
		hs := make([]Hash, len(items))
		for i, it := range items {
			hs[i] = it.Hash
		}
		if n, err := s.Delete(testCtx(t), hs); err != nil || n != len(items) {
			t.Fatalf("Delete = %d, %v", n, err)
		}
		if !more {
			break
		}
	}
	if fmt.Sprint(sizes) != "[3 3 1]" {
		t.Fatalf("page sizes %v", sizes)
	}
	if _, c, _ := r.st.Usage(testCtx(t), KeyID(key).bytes()); c != 0 {
		t.Fatalf("%d envelopes left after delete", c)
	}
}

func (id ID) bytes() []byte { return id[:] }

func TestDedupe(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	c := r.client(t)
	key := mustKey(t)
	e := envelope("same", 500)
	for range 3 {
		if err := Deposit(testCtx(t), c, r.node.PeerID(), KeyID(key), e); err != nil {
			t.Fatalf("Deposit: %v", err)
		}
	}
	if items := fetchAll(t, c, r.node.PeerID(), key, 0); len(items) != 1 {
		t.Fatalf("stored %d copies, want 1", len(items))
	}
	if n, _, _ := r.st.TotalUsage(testCtx(t)); n != 500 {
		t.Fatalf("total usage %d, want 500", n)
	}
}

// rawSession opens a stream and asks for a challenge.
func rawSession(t *testing.T, c Opener, server string) (*clientConn, []byte) {
	t.Helper()
	cc, err := dial(testCtx(t), c, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.st.Reset() })
	resp, err := cc.call(testCtx(t), &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Challenge{Challenge: &wirepb.MailboxChallengeRequest{}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cc, resp.GetChallenge().Nonce
}

func authReq(pub, sig []byte) *wirepb.MailboxRequest {
	return &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Auth{Auth: &wirepb.MailboxAuth{PublicKey: pub, Signature: sig}}}
}

func listReq() *wirepb.MailboxRequest {
	return &wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_List{List: &wirepb.MailboxList{}}}
}

func TestWrongProofGetsNothing(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	other := startRelay(t, nil, "", ServerConfig{})
	c := r.client(t)
	server := r.node.PeerID()
	key := mustKey(t)
	pub := key.Public().(ed25519.PublicKey)
	if err := Deposit(testCtx(t), c, server, KeyID(key), envelope("secret", 100)); err != nil {
		t.Fatal(err)
	}
	mallory := mustKey(t)

	// unauthorized checks that the request is refused, the stream is over,
	// and no envelope came.
	unauthorized := func(name string, cc *clientConn, req *wirepb.MailboxRequest) {
		t.Helper()
		resp, err := cc.call(testCtx(t), req, nil)
		if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrRefused) {
			t.Errorf("%s: err = %v, want ErrUnauthorized", name, err)
		}
		if resp != nil && resp.Body != nil {
			t.Errorf("%s: answer has a body", name)
		}
		if _, err := cc.call(testCtx(t), listReq(), nil); err == nil {
			t.Errorf("%s: stream still serves after a failed proof", name)
		}
	}

	cc, nonce := rawSession(t, c, server)
	sig := ed25519.Sign(mallory, proofMessage(server, nonce, KeyID(key)))
	unauthorized("signature by another key", cc, authReq(pub, sig))

	cc, nonce = rawSession(t, c, server)
	_, msig := signProof(mallory, server, nonce)
	unauthorized("owner's key, mallory's signature", cc, authReq(pub, msig))

	cc, nonce = rawSession(t, c, server)
	_, sig = signProof(key, other.node.PeerID(), nonce)
	unauthorized("proof for another server", cc, authReq(pub, sig))

	// A valid proof, replayed on a new stream (new nonce), and reused on
	// its own stream.
	cc, nonce = rawSession(t, c, server)
	_, sig = signProof(key, server, nonce)
	if _, err := cc.call(testCtx(t), authReq(pub, sig), nil); err != nil {
		t.Fatalf("valid proof: %v", err)
	}
	cc2, _ := rawSession(t, c, server)
	unauthorized("replayed proof", cc2, authReq(pub, sig))
	cc3, nonce3 := rawSession(t, c, server)
	_, sig3 := signProof(key, server, nonce3)
	if _, err := cc3.call(testCtx(t), authReq(pub, sig3), nil); err != nil {
		t.Fatal(err)
	}
	unauthorized("nonce answered twice", cc3, authReq(pub, sig3))

	cc4, err := dial(testCtx(t), c, server)
	if err != nil {
		t.Fatal(err)
	}
	unauthorized("list without proof", cc4, listReq())
	cc5, err := dial(testCtx(t), c, server)
	if err != nil {
		t.Fatal(err)
	}
	_, sig = signProof(key, server, make([]byte, NonceSize))
	unauthorized("proof without challenge", cc5, authReq(pub, sig))

	// The owner still gets the envelope.
	if items := fetchAll(t, c, server, key, 0); len(items) != 1 {
		t.Fatalf("owner fetched %d items", len(items))
	}
}

func TestTooLargeAndQuotas(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{MaxEnvelopeSize: 1000, Quotas: Quotas{PerMailbox: 2500, Total: 3500}})
	c := r.client(t)
	server := r.node.PeerID()
	a, b := KeyID(mustKey(t)), KeyID(mustKey(t))

	err := Deposit(testCtx(t), c, server, a, envelope("big", 1001))
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrRefused) {
		t.Fatalf("over host limit: %v", err)
	}
	err = Deposit(testCtx(t), c, server, a, envelope("huge", wire.MaxEnvelopeSize+1))
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrRefused) {
		t.Fatalf("over wire limit (not sent): %v", err)
	}
	for i := range 2 {
		if err := Deposit(testCtx(t), c, server, a, envelope(fmt.Sprint("a", i), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	err = Deposit(testCtx(t), c, server, a, envelope("a2", 1000))
	if !errors.Is(err, ErrQuotaFull) || !errors.Is(err, ErrRefused) {
		t.Fatalf("mailbox full: %v", err)
	}
	t.Logf("mailbox full: %v", err)
	if err := Deposit(testCtx(t), c, server, b, envelope("b0", 1000)); err != nil {
		t.Fatal(err)
	}
	err = Deposit(testCtx(t), c, server, b, envelope("b1", 1000))
	if !errors.Is(err, ErrQuotaFull) {
		t.Fatalf("storage full: %v", err)
	}
	t.Logf("storage full: %v", err)
	// A duplicate of a held envelope is still accepted when full.
	if err := Deposit(testCtx(t), c, server, a, envelope("a0", 1000)); err != nil {
		t.Fatalf("duplicate when full: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	clock := newClock()
	r := startRelay(t, nil, "", ServerConfig{RateLimit: RateLimit{PerSecond: 2, Burst: 3}, Now: clock.Now})
	c1, c2 := r.client(t), r.client(t)
	server := r.node.PeerID()
	id := KeyID(mustKey(t))
	envs := make([][]byte, 4)
	for i := range envs {
		envs[i] = envelope(fmt.Sprint("r", i), 100)
	}
	n, err := DepositBatch(testCtx(t), c1, server, id, envs)
	if n != 3 || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("burst: %d accepted, %v", n, err)
	}
	// Another peer has its own bucket.
	if err := Deposit(testCtx(t), c2, server, id, envs[3]); err != nil {
		t.Fatalf("other peer: %v", err)
	}
	clock.Add(500 * time.Millisecond) // one token back
	if err := Deposit(testCtx(t), c1, server, id, envelope("r5", 100)); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if err := Deposit(testCtx(t), c1, server, id, envelope("r6", 100)); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("bucket empty again: %v", err)
	}
}

// TestMailboxRateLimit: peer ids are free, so deposits into one mailbox
// are limited whoever makes them; other mailboxes are not affected.
func TestMailboxRateLimit(t *testing.T) {
	clock := newClock()
	r := startRelay(t, nil, "", ServerConfig{RateLimit: RateLimit{PerSecond: -1}, MailboxRateLimit: RateLimit{PerSecond: 1, Burst: 3}, Now: clock.Now})
	server := r.node.PeerID()
	id, other := KeyID(mustKey(t)), KeyID(mustKey(t))
	for i := range 3 {
		// A fresh peer for every deposit: the per-peer bucket never runs dry.
		if err := Deposit(testCtx(t), r.client(t), server, id, envelope(fmt.Sprint("m", i), 100)); err != nil {
			t.Fatalf("deposit %d: %v", i, err)
		}
	}
	if err := Deposit(testCtx(t), r.client(t), server, id, envelope("m3", 100)); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("fourth deposit into one mailbox from a fourth peer: %v, want ErrRateLimited", err)
	}
	if err := Deposit(testCtx(t), r.client(t), server, other, envelope("o0", 100)); err != nil {
		t.Fatalf("another mailbox: %v", err)
	}
	clock.Add(time.Second) // one token back
	if err := Deposit(testCtx(t), r.client(t), server, id, envelope("m4", 100)); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestTTLExpiry(t *testing.T) {
	clock := newClock()
	r := startRelay(t, nil, "", ServerConfig{TTL: time.Hour, Now: clock.Now})
	c := r.client(t)
	server := r.node.PeerID()
	key := mustKey(t)
	if err := Deposit(testCtx(t), c, server, KeyID(key), envelope("old", 100)); err != nil {
		t.Fatal(err)
	}
	clock.Add(59 * time.Minute)
	if err := Deposit(testCtx(t), c, server, KeyID(key), envelope("new", 100)); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Minute) // "old" is 61 minutes old
	items := fetchAll(t, c, server, key, 0)
	if len(items) != 1 || !bytes.HasPrefix(items[0].Envelope, []byte("new")) {
		t.Fatalf("fetched %d items after expiry", len(items))
	}
	if n, err := r.srv.Sweep(testCtx(t)); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	if n, c, _ := r.st.TotalUsage(testCtx(t)); n != 100 || c != 1 {
		t.Fatalf("usage after sweep %d bytes, %d envelopes", n, c)
	}
}

func TestBackgroundSweep(t *testing.T) {
	clock := newClock()
	r := startRelay(t, nil, "", ServerConfig{TTL: time.Hour, Now: clock.Now, SweepInterval: 10 * time.Millisecond})
	c := r.client(t)
	if err := Deposit(testCtx(t), c, r.node.PeerID(), KeyID(mustKey(t)), envelope("x", 100)); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, n, _ := r.st.TotalUsage(testCtx(t)); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background sweep did not delete the expired envelope")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRestartKeepsAccepted(t *testing.T) {
	node := newNode(t)
	path := filepath.Join(t.TempDir(), "mailbox.db")
	r := startRelay(t, node, path, ServerConfig{})
	c := r.client(t)
	key := mustKey(t)
	e := envelope("durable", 2000)
	if err := Deposit(testCtx(t), c, node.PeerID(), KeyID(key), e); err != nil {
		t.Fatal(err)
	}
	r.close(t)
	if _, err := Fetch(testCtx(t), c, node.PeerID(), key, 0); err == nil {
		t.Fatal("fetch from a stopped server succeeded")
	}
	startRelay(t, node, path, ServerConfig{})
	items := fetchAll(t, c, node.PeerID(), key, 0)
	if len(items) != 1 || !bytes.Equal(items[0].Envelope, e) {
		t.Fatalf("after restart: %d items", len(items))
	}
}

func TestStoreFileEncrypted(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	c := r.client(t)
	marker := []byte("VISIBLE-MARKER-8d2e")
	e := bytes.Repeat(marker, 100)
	if err := Deposit(testCtx(t), c, r.node.PeerID(), KeyID(mustKey(t)), e); err != nil {
		t.Fatal(err)
	}
	scan := func() {
		t.Helper()
		dir := filepath.Dir(r.path)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, marker) {
				t.Errorf("%s holds the envelope in the clear", ent.Name())
			}
			if bytes.HasPrefix(b, []byte("SQLite format 3")) {
				t.Errorf("%s is an unencrypted SQLite file", ent.Name())
			}
		}
	}
	scan() // with the WAL
	r.close(t)
	scan()
}

func TestConcurrentDepositors(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	server := r.node.PeerID()
	key := mustKey(t)
	const senders, each = 6, 20
	var wg sync.WaitGroup
	for s := range senders {
		c := r.client(t)
		wg.Go(func() {
			for i := range each {
				e := envelope(fmt.Sprintf("s%d-%d", s, i), 200)
				if err := Deposit(testCtx(t), c, server, KeyID(key), e); err != nil {
					t.Errorf("sender %d deposit %d: %v", s, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	items := fetchAll(t, r.client(t), server, key, MaxPageItems)
	if len(items) != senders*each {
		t.Fatalf("fetched %d, want %d", len(items), senders*each)
	}
	seen := map[Hash]bool{}
	for _, it := range items {
		seen[it.Hash] = true
	}
	if len(seen) != senders*each {
		t.Fatalf("%d distinct envelopes", len(seen))
	}
}

func TestServerCloseEndsSessions(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	c := r.client(t)
	key := mustKey(t)
	s, err := OpenSession(testCtx(t), c, r.node.PeerID(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r.close(t)
	if _, _, err := s.Next(testCtx(t), 0); err == nil {
		t.Fatal("session survived server Close")
	}
}

// syncBuf is a bytes.Buffer safe for the server's streams and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestTrace: the trace holds what crossed the streams both ways — the
// deposited envelope (in) and the fetched one (out) — and nothing is
// traced twice or lost when the trace writer fails.
func TestTrace(t *testing.T) {
	var tr syncBuf
	r := startRelay(t, nil, "", ServerConfig{Trace: &tr})
	c := r.client(t)
	key := mustKey(t)
	env := envelope("traced envelope", 700)
	if err := Deposit(testCtx(t), c, r.node.PeerID(), KeyID(key), env); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(tr.Bytes(), env); n != 1 {
		t.Fatalf("the deposit is traced %d times, want 1", n)
	}
	items, err := Fetch(testCtx(t), c, r.node.PeerID(), key, 0)
	if err != nil || len(items) != 1 {
		t.Fatalf("Fetch: %d, %v", len(items), err)
	}
	if n := bytes.Count(tr.Bytes(), env); n != 2 {
		t.Fatalf("after the fetch the envelope is traced %d times, want 2", n)
	}
	// Each stream is introduced by who it came from: what the host learns.
	if n := bytes.Count(tr.Bytes(), []byte("\n#stream peer="+c.PeerID()+" addr=/ip4/127.0.0.1/")); n != 2 {
		t.Fatalf("%d stream lines naming the client, want 2 (deposit, fetch)", n)
	}

	// A broken trace does not break the service.
	r2 := startRelay(t, nil, "", ServerConfig{Trace: failWriter{}})
	c2 := r2.client(t)
	if err := Deposit(testCtx(t), c2, r2.node.PeerID(), KeyID(key), env); err != nil {
		t.Fatalf("Deposit with a failing trace: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk gone") }
