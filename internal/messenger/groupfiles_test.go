package messenger

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
)

// groupFileRun makes a group of n media nodes, has a member that is not
// the admin send a file of size bytes to it, and waits until every other
// member holds the whole file. It returns the time from the send until
// then and the bytes of chunks the sender served.
func groupFileRun(tb testing.TB, n, size int) (time.Duration, int64) {
	ctx := context.Background()
	nodes := make([]*tnode, n)
	for i := range nodes {
		nodes[i], _ = mediaNode(tb, fmt.Sprintf("m%02d", i))
	}
	admin := nodes[0]
	for _, x := range nodes[1:] {
		addContact(tb, admin, x)
	}
	g, err := admin.m.CreateGroup(ctx, "Family abroad")
	if err != nil {
		tb.Fatal(err)
	}
	for _, x := range nodes[1:] {
		if _, err := admin.m.GroupAdd(ctx, g.ID, x.name); err != nil {
			tb.Fatal(err)
		}
	}
	for _, x := range nodes {
		eventually(tb, 120*time.Second, x.name+" sees every member", func() bool {
			gi, err := x.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == n
		})
	}
	// Every member's sender key must have reached the others before the
	// file goes out: a text from the sender, read by all.
	sender := nodes[1]
	if _, err := sender.m.GroupSend(ctx, g.ID, "photos coming"); err != nil {
		tb.Fatal(err)
	}
	for _, x := range nodes {
		eventually(tb, 120*time.Second, x.name+" reads the sender", func() bool { return groupHas(tb, x, g.ID, "photos coming") })
	}
	path, data := writeRandom(tb, size)
	served0 := sender.m.cfg.Media.BytesServed()
	start := time.Now()
	gm, err := sender.m.GroupSendFile(ctx, g.ID, path, "the album")
	if err != nil {
		tb.Fatal(err)
	}
	var seenAt, firstAt, gotAt time.Duration
	have := map[*tnode]bool{sender: true}
	eventually(tb, 300*time.Second, "every member has the file", func() bool {
		for _, x := range nodes {
			if have[x] {
				continue
			}
			tr := transferOf(tb, x, gm.ID)
			if tr.State != "" && seenAt == 0 {
				seenAt = time.Since(start)
			}
			if tr.State == media.StateComplete {
				have[x] = true
				if gotAt = time.Since(start); firstAt == 0 {
					firstAt = gotAt
				}
			}
		}
		return len(have) == n
	})
	tb.Logf("the message reached a member after %v; the first member had the file after %v, the last after %v", seenAt, firstAt, gotAt)
	took := time.Since(start)
	served := sender.m.cfg.Media.BytesServed() - served0
	for _, x := range []*tnode{nodes[0], nodes[n-1]} {
		out := filepath.Join(tb.TempDir(), "saved")
		if err := x.m.SaveFile(ctx, gm.ID, out); err != nil {
			tb.Fatal(err)
		}
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
			tb.Fatalf("%s's copy differs (%v)", x.name, err)
		}
		if tr := transferOf(tb, x, gm.ID); tr.Group != g.ID || !tr.Incoming {
			tb.Fatalf("%s's transfer: %+v", x.name, tr)
		}
	}
	if !groupHas(tb, nodes[0], g.ID, "the album") {
		tb.Fatal("the caption did not arrive")
	}
	return took, served
}

// TestGroupSendFileSwarm: a file sent to a group is uploaded about once
// by its sender; the members take the rest from each other.
func TestGroupSendFileSwarm(t *testing.T) {
	n, size := 8, 10<<20
	if raceBuild {
		n, size = 5, 3<<20
	}
	took, served := groupFileRun(t, n, size)
	t.Logf("%d members, %d MiB: all have it after %v; the sender served %d bytes (%.2f× the file)",
		n, size>>20, took, served, float64(served)/float64(size))
	if served > 2*int64(size) {
		t.Fatalf("the sender served %d bytes for a file of %d to %d members", served, size, n-1)
	}
}

// BenchmarkGroupFile50 sends a 10 MiB file to a group of 50 real nodes.
func BenchmarkGroupFile50(b *testing.B) {
	for range b.N {
		took, served := groupFileRun(b, 50, 10<<20)
		b.ReportMetric(took.Seconds(), "s-until-all")
		b.ReportMetric(float64(served)/float64(10<<20), "sender-upload-x")
	}
}
