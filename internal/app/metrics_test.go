package app

import (
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// scrape fetches url and returns its samples by name and labels, as
// `name{labels}` → value, and the raw text.
func scrape(t *testing.T, url string) (map[string]float64, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d, %v", resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out, string(b)
}

// TestRelayMetrics scrapes a relay's /metrics after real deposits, a fetch,
// a delete and with a circuit open through it, and checks the counters and
// that no id appears.
func TestRelayMetrics(t *testing.T) {
	r := startTestRelay(t, filepath.Join(t.TempDir(), "relay"), MailboxOptions{})
	ms, err := r.ServeMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	url := "http://" + ms.Addr() + "/metrics"

	c := loopbackPeer(t, r)
	key := mailboxKey(t)
	id := mailbox.KeyID(key)
	for i := range 3 {
		if err := mailbox.Deposit(relayCtx(t), c, r.PeerID(), id, env(i, 500)); err != nil {
			t.Fatal(err)
		}
	}
	if err := mailbox.Deposit(relayCtx(t), c, r.PeerID(), id, env(0, 500)); err != nil {
		t.Fatal(err) // a duplicate
	}
	items, err := mailbox.Fetch(relayCtx(t), c, r.PeerID(), key, 0)
	if err != nil || len(items) != 3 {
		t.Fatalf("Fetch = %d, %v", len(items), err)
	}
	if n, err := mailbox.Delete(relayCtx(t), c, r.PeerID(), key, []mailbox.Hash{items[0].Hash}); err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v", n, err)
	}

	// A circuit: a reaches b through the relay, the stream held open.
	a, b := loopbackPeer(t, nil), loopbackPeer(t, nil)
	hold := make(chan struct{})
	defer close(hold)
	a.Handle(p2p.EchoProtocol, func(s p2p.Stream) {
		<-hold
		s.Close()
	})
	rsvp, err := a.ReserveRelay(relayCtx(t), r.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	b.AddAddrs(a.PeerID(), rsvp.Addrs)
	s, err := b.OpenStream(relayCtx(t), a.PeerID(), p2p.EchoProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	if _, err := s.Write([]byte("x")); err != nil { // the stream reaches a
		t.Fatal(err)
	}

	var got map[string]float64
	var text string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, text = scrape(t, url)
		if got["samizdat_relay_circuits"] >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the condition
	}
	for name, want := range map[string]float64{
		`samizdat_relay_deposits_total{result="stored"}`:    3,
		`samizdat_relay_deposits_total{result="duplicate"}`: 1,
		`samizdat_relay_deposits_total{result="refused"}`:   0,
		`samizdat_relay_fetches_total`:                      1,
		`samizdat_relay_fetched_envelopes_total`:            3,
		`samizdat_relay_deleted_envelopes_total`:            1,
		`samizdat_relay_stored_envelopes`:                   2,
		`samizdat_relay_stored_bytes`:                       1000,
		`samizdat_relay_quota_bytes`:                        float64(mailbox.DefaultTotalQuota),
		`samizdat_relay_blob_quota_bytes`:                   float64(mailbox.DefaultBlobTotalQuota),
		`samizdat_relay_stored_blob_bytes`:                  0,
		`samizdat_relay_blobs_total{result="stored"}`:       0,
		`samizdat_relay_circuits`:                           1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got[`samizdat_relay_mailbox_bytes_total{direction="received"}`] < 4*500 {
		t.Errorf("received bytes %v < the envelopes deposited", got[`samizdat_relay_mailbox_bytes_total{direction="received"}`])
	}
	if got[`samizdat_relay_mailbox_bytes_total{direction="sent"}`] < 3*500 {
		t.Errorf("sent bytes %v < the envelopes fetched", got[`samizdat_relay_mailbox_bytes_total{direction="sent"}`])
	}
	if got["samizdat_relay_peers"] < 3 {
		t.Errorf("peers = %v, want ≥ 3 (c, a, b)", got["samizdat_relay_peers"])
	}
	if _, ok := got["process_resident_memory_bytes"]; !ok {
		t.Error("no process metrics")
	}
	for _, secret := range []string{r.PeerID(), c.PeerID(), a.PeerID(), b.PeerID(), hex.EncodeToString(id[:])} {
		if strings.Contains(text, secret) {
			t.Errorf("the metrics name an id (%s…)", secret[:8])
		}
	}
}

func TestRelayMetricsLoopbackOnly(t *testing.T) {
	r := startTestRelay(t, filepath.Join(t.TempDir(), "relay"), MailboxOptions{})
	for _, addr := range []string{"0.0.0.0:9464", ":9464", "192.0.2.1:9464", "localhost:9464", "127.0.0.1"} {
		if ms, err := r.ServeMetrics(addr); !errors.Is(err, ErrMetricsAddr) {
			if ms != nil {
				ms.Close()
			}
			t.Errorf("ServeMetrics(%q) = %v, want ErrMetricsAddr", addr, err)
		}
	}
}
