package testnet

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// labTransfer is the part of `files --json` this test reads.
type labTransfer struct {
	MessageID string `json:"messageId"`
	Done      int    `json:"chunksDone"`
	Total     int    `json:"chunksTotal"`
	State     string `json:"state"`
	Error     string `json:"error"`
}

func (d *Daemon) files() map[string]labTransfer {
	d.tb.Helper()
	var ts []labTransfer
	if err := json.Unmarshal([]byte(d.Must("files", "--json")), &ts); err != nil {
		d.tb.Fatal(err)
	}
	out := map[string]labTransfer{}
	for _, t := range ts {
		out[t.MessageID] = t
	}
	return out
}

// TestLabThrottledAlbum: under the throttle model (20 % bandwidth, 5 %
// loss), alice sends carol a 10 MiB album (4 photos of 2.5 MiB); a text
// sent once the photos are on their way is not held behind them: files
// travel on streams of their own (/samizdat/blob/1). The text's latency
// and the album's time are logged as figures (docs/BENCHMARKS.md), not
// asserted: wall-clock bounds do not belong in tests.
func TestLabThrottledAlbum(t *testing.T) {
	RequireRoot(t, "nft", "iptables", "tc")
	p := newPair(t, tAll)
	p.lab.Apply(Throttle)
	if r := p.run(t, 0, 60*time.Second); !r.Delivered {
		t.Fatalf("not delivered under the throttle\n%s", p.a.Log())
	}
	const photos, size = 4, 10 << 20 / 4
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	start := time.Now()
	var ids []string
	for i := range photos {
		b := make([]byte, size)
		rand.Read(b)
		path := filepath.Join(dir, fmt.Sprintf("photo%d.bin", i))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.TrimSpace(p.a.Must("send", "carol", "--file", path, fmt.Sprintf("photo %d", i))))
	}
	// The text leaves once carol is fetching the album.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		fs := p.c.files()
		busy := 0
		for _, id := range ids {
			if tr := fs[id]; tr.State == "fetching" && tr.Done > 0 && tr.Done < tr.Total {
				busy++
			}
		}
		if busy > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol is not fetching the album: %+v\n%s", fs, p.c.Log())
		}
		time.Sleep(100 * time.Millisecond) // polling carol's transfers
	}
	sent := time.Now()
	text := p.a.Send("carol", "are the photos arriving?")
	at, ok := p.deliveredAt(text, 2*time.Minute)
	if !ok {
		t.Fatalf("the text sent during the album was not delivered\n%s", p.a.Log())
	}
	textLatency := at.Sub(sent)
	var doneDuring int
	for _, tr := range p.c.files() {
		doneDuring += tr.Done
	}
	deadline = time.Now().Add(10 * time.Minute)
	for {
		fs := p.c.files()
		complete := 0
		for _, id := range ids {
			if fs[id].State == "complete" {
				complete++
			}
		}
		if complete == photos {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the album did not complete: %+v\n%s", fs, p.c.Log())
		}
		time.Sleep(500 * time.Millisecond) // polling carol's transfers
	}
	album := time.Since(start)
	p.carolGot(t, "are the photos arriving?")
	t.Logf("throttle model: the 10 MiB album (%d photos) completed after %v (%.0f KB/s); a text sent while it was on its way (%d chunks in) was delivered after %v",
		photos, album.Round(100*time.Millisecond), float64(photos*size)/album.Seconds()/1e3, doneDuring, textLatency.Round(time.Millisecond))
}
