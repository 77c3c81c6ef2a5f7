package senderkey

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/crypto/internal/testrand"
)

type fuzzFixture struct {
	receiver      []byte // a receiver with skipped keys
	messages      [][]byte
	senders       [][]byte
	distributions [][]byte
	receivers     [][]byte
}

func newFuzzFixture(t testing.TB) fuzzFixture {
	s, r := newSenderReceiver(t, "fuzz fixture", Config{MaxSkip: 20})
	var fx fuzzFixture
	fx.distributions = append(fx.distributions, s.Distribution().Marshal())
	fx.senders = append(fx.senders, s.Marshal())
	fx.receivers = append(fx.receivers, r.Marshal())
	var msgs [][]byte
	for i := range 6 {
		msgs = append(msgs, mustEncrypt(t, s, fmt.Sprint("message ", i)))
	}
	mustDecrypt(t, r, msgs[1], "message 1")
	mustDecrypt(t, r, msgs[3], "message 3")
	fx.receiver = r.Marshal()
	fx.receivers = append(fx.receivers, fx.receiver)
	fx.senders = append(fx.senders, s.Marshal())
	fx.distributions = append(fx.distributions, s.Distribution().Marshal())
	fx.messages = append(msgs, []byte{}, []byte{Version}, make([]byte, Overhead))
	return fx
}

func FuzzDecrypt(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, m := range fx.messages {
		f.Add(m)
	}
	r, err := UnmarshalReceiver(fx.receiver)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		before := r.Marshal()
		pt, err := r.Decrypt(msg)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if !bytes.Equal(before, r.Marshal()) {
				t.Fatalf("failed Decrypt (%v) changed the receiver", err)
			}
			return
		}
		if r, err = UnmarshalReceiver(fx.receiver); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParseDistribution(f *testing.F) {
	for _, b := range newFuzzFixture(f).distributions {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := ParseDistribution(in)
		if err != nil {
			return
		}
		if got := d.Marshal(); !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
		if _, err := NewReceiver(d, Config{}); err != nil {
			t.Fatalf("parsed distribution rejected: %v", err)
		}
	})
}

func FuzzUnmarshalSender(f *testing.F) {
	for _, b := range newFuzzFixture(f).senders {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := UnmarshalSender(in)
		if err != nil {
			return
		}
		if got := s.Marshal(); !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
		_, _ = s.Encrypt([]byte("x"))
	})
}

func FuzzUnmarshalReceiver(f *testing.F) {
	for _, b := range newFuzzFixture(f).receivers {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := UnmarshalReceiver(in)
		if err != nil {
			return
		}
		if got := r.Marshal(); !bytes.Equal(got, in) {
			t.Fatal("re-marshal differs")
		}
	})
}

// TestFuzzCorpus writes the committed seed corpora with -update.
func TestFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	fx := newFuzzFixture(t)
	writeCorpus(t, "FuzzDecrypt", fx.messages)
	writeCorpus(t, "FuzzParseDistribution", fx.distributions)
	writeCorpus(t, "FuzzUnmarshalSender", fx.senders)
	writeCorpus(t, "FuzzUnmarshalReceiver", fx.receivers)
}

func writeCorpus(t *testing.T, target string, seeds [][]byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), testrand.CorpusFile(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
