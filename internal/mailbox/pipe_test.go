package mailbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// TestPipelinedDeposits sends more deposits on one stream than one batch
// of the host's takes, without waiting for answers: every one is
// accepted, stored once, in order, and the host committed them in fewer
// transactions than deposits (they were answered together).
func TestPipelinedDeposits(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{RateLimit: RateLimit{PerSecond: -1}, MailboxRateLimit: RateLimit{PerSecond: -1}})
	c := r.client(t)
	key := mustKey(t)
	const n = 2*maxPipelined + 17
	envs := make([][]byte, n)
	for i := range envs {
		envs[i] = envelope(fmt.Sprintf("pipelined %d;", i), 200)
	}
	tx0, calls0 := r.st.GroupStats()
	got, err := DepositBatch(testCtx(t), c, r.node.PeerID(), KeyID(key), envs)
	if err != nil || got != n {
		t.Fatalf("DepositBatch: %d of %d, %v", got, n, err)
	}
	tx, calls := r.st.GroupStats()
	if tx-tx0 >= n {
		t.Errorf("%d deposits took %d transactions (%d calls): not batched", n, tx-tx0, calls-calls0)
	}
	items, err := Fetch(testCtx(t), c, r.node.PeerID(), key, MaxPageItems)
	if err != nil || len(items) != n {
		t.Fatalf("Fetch: %d, %v", len(items), err)
	}
	for i, it := range items {
		if !bytes.Equal(it.Envelope, envs[i]) {
			t.Fatalf("envelope %d out of order or changed", i)
		}
	}
	// Again: all duplicates, all answered "accepted", nothing stored twice.
	if got, err := DepositBatch(testCtx(t), c, r.node.PeerID(), KeyID(key), envs); err != nil || got != n {
		t.Fatalf("DepositBatch again: %d, %v", got, err)
	}
	if _, count, _ := r.st.Usage(testCtx(t), idBytes(key)); count != n {
		t.Fatalf("%d envelopes held after depositing twice, want %d", count, n)
	}
}

// TestPipelinedRefusal fills a mailbox in the middle of a pipelined
// batch: the count is of the envelopes before the refusal and the error
// says the quota is full.
func TestPipelinedRefusal(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{Quotas: Quotas{PerMailbox: 1000}, RateLimit: RateLimit{PerSecond: -1}})
	c := r.client(t)
	key := mustKey(t)
	var envs [][]byte
	for i := range 8 {
		envs = append(envs, envelope(fmt.Sprintf("quota %d;", i), 300)) // the 4th is over 1,000 bytes
	}
	got, err := DepositBatch(testCtx(t), c, r.node.PeerID(), KeyID(key), envs)
	if got != 3 || !errors.Is(err, ErrQuotaFull) || !errors.Is(err, ErrRefused) {
		t.Fatalf("DepositBatch: %d, %v; want 3, quota full", got, err)
	}
	if _, count, _ := r.st.Usage(testCtx(t), idBytes(key)); count != 3 {
		t.Fatalf("%d envelopes held, want 3", count)
	}
}

// TestPipelinedMixed writes a deposit, a challenge and another deposit in
// one go: the host reads the challenge while batching deposits, and still
// answers all three in order.
func TestPipelinedMixed(t *testing.T) {
	r := startRelay(t, nil, "", ServerConfig{})
	c := r.client(t)
	key := mustKey(t)
	id := KeyID(key)
	st, err := c.OpenStream(testCtx(t), r.node.PeerID(), Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var buf bytes.Buffer
	dep := func(env []byte) {
		_ = wire.WriteFrame(&buf, request(&wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.MailboxDeposit{MailboxId: id[:], EnvelopeSize: uint32(len(env))}}}))
		_ = wire.WriteFrame(&buf, env)
	}
	dep(envelope("first", 100))
	_ = wire.WriteFrame(&buf, request(&wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Challenge{Challenge: &wirepb.MailboxChallengeRequest{}}}))
	dep(envelope("second", 100))
	if _, err := st.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"deposit", "challenge", "deposit"} {
		b, err := wire.ReadFrame(st)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		resp, err := parseResponse(b)
		if err != nil || resp.Status != wirepb.MailboxResponse_STATUS_OK {
			t.Fatalf("answer %d: %v %v", i, resp, err)
		}
		if _, isCh := resp.Body.(*wirepb.MailboxResponse_Challenge); isCh != (want == "challenge") {
			t.Fatalf("answer %d is not the %s's", i, want)
		}
	}
	if _, count, _ := r.st.Usage(testCtx(t), id[:]); count != 2 {
		t.Fatalf("%d envelopes held, want 2", count)
	}
}

func idBytes(key []byte) []byte { id := KeyID(key); return id[:] }

// TestPipelinedBatchBound hands the host eighty 40 KiB deposits that have
// all arrived: it answers them in batches of at most maxPipelinedBytes
// (and one envelope), never holding the whole stream in memory.
func TestPipelinedBatchBound(t *testing.T) {
	unlimited := RateLimit{PerSecond: -1}
	r := startRelay(t, nil, "", ServerConfig{RateLimit: unlimited, MailboxRateLimit: unlimited})
	id := KeyID(mustKey(t))
	const n, size = 80, 40 << 10
	var in bytes.Buffer
	for i := range n {
		env := envelope(fmt.Sprintf("big %d;", i), size)
		_ = wire.WriteFrame(&in, request(&wirepb.MailboxRequest{Op: &wirepb.MailboxRequest_Deposit{Deposit: &wirepb.MailboxDeposit{MailboxId: id[:], EnvelopeSize: uint32(len(env))}}}))
		_ = wire.WriteFrame(&in, env)
	}
	var out bytes.Buffer
	buf := bufio.NewReaderSize(&in, 64<<10)
	c := &serverConn{s: r.srv, peer: "test", buf: buf, rd: buf, w: bufio.NewWriter(&out)}
	answered := 0
	for answered < n {
		b, err := c.nextFrame()
		if err != nil {
			t.Fatalf("after %d answers: %v", answered, err)
		}
		req, err := parseRequest(b)
		if err != nil || req.GetDeposit() == nil {
			t.Fatalf("request %d: %v", answered, err)
		}
		before := out.Len()
		if err := c.deposits(req.GetDeposit()); err != nil {
			t.Fatal(err)
		}
		k := 0
		for rd := bytes.NewReader(out.Bytes()[before:]); ; k++ {
			b, err := wire.ReadFrame(rd)
			if err != nil {
				break
			}
			if resp, err := parseResponse(b); err != nil || resp.Status != wirepb.MailboxResponse_STATUS_OK {
				t.Fatalf("answer: %v %v", resp, err)
			}
		}
		if max := maxPipelinedBytes/size + 1; k == 0 || k > max {
			t.Fatalf("one batch answered %d deposits of %d bytes, want 1 to %d", k, size, max)
		}
		answered += k
	}
	if _, count, _ := r.st.Usage(testCtx(t), id[:]); count != n {
		t.Fatalf("%d envelopes held, want %d", count, n)
	}
}
