package app

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// TestScaleChannelSmoke runs the channel scale bench at a small size: every
// subscriber gets every post and the figures are produced (never timed).
func TestScaleChannelSmoke(t *testing.T) {
	r, err := RunChannelScale(context.Background(), t.TempDir(), ChannelScaleOptions{Subscribers: 20, Posts: 3, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.To99) != 3 || r.Reached[0] != 20 || r.BytesPerSub <= 0 || r.PostBytes <= 100 ||
		len(r.PostCall) != 3 || len(r.AnchorTo99) != 3 {
		t.Fatalf("figures missing: %+v", r)
	}
	// The anchor's messages reached 99 % too (a miss counts as postWait).
	for i, d := range r.AnchorTo99 {
		if d == postWait {
			t.Errorf("anchor message %d missed 99 %% of the hosts", i)
		}
	}
	for i, d := range r.To100 {
		if d == 0 {
			t.Errorf("post %d did not reach all 20 subscribers", i)
		}
	}
	for _, f := range r.Figures() {
		t.Log(f)
	}
}

// TestScaleGroupSmoke runs the group scale bench at a small size.
func TestScaleGroupSmoke(t *testing.T) {
	r, err := RunGroupScale(context.Background(), t.TempDir(), GroupScaleOptions{Members: 20, Messages: 3, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	figs := r.Figures()
	if len(figs) != 9 || len(r.To99) != 3 {
		t.Fatalf("figures missing: %+v", r)
	}
	// One sender-key encryption per message, no 1:1 encryption; the
	// build: one invitation to each of the 18 members added at once (their
	// ops fit one control) and one card announcement.
	if r.EncPerMessage != 1 || r.BuildPairwise != 18 || r.BuildSenderKey != 1 {
		t.Errorf("encryptions: %v per message, build %d 1:1 + %d sender-key; want 1, 18 + 1", r.EncPerMessage, r.BuildPairwise, r.BuildSenderKey)
	}
	for _, f := range figs {
		t.Log(f)
	}
}

// tlogWriter sends a bench's progress lines to the test log.
type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func testLog(t *testing.T) tlogWriter { return tlogWriter{t} }

// TestScaleIdleSmoke runs both idle measurements with a 5-second window:
// the real binary runs under its own user id and the figures come out
// (the hour's figures of a 5 s window say little: see docs/BENCHMARKS.md
// for the 5-minute runs).
func TestScaleIdleSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the idle benchmarks need root (iptables counters, a user id of their own)")
	}
	exe := buildSamizdat(t)
	for _, tc := range []struct {
		name string
		run  func(context.Context, string, IdleOptions) (IdleResult, error)
	}{{"node", RunIdleNode}, {"relay", RunIdleRelay}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := worldDir(t)
			r, err := tc.run(context.Background(), dir, IdleOptions{Window: 5 * time.Second, Settle: 3 * time.Second, Exe: exe, Log: testLog(t),
				Contacts: 4, Groups: 2, PerGroup: 2, Channels: 1})
			if err != nil {
				t.Fatal(err)
			}
			// The node has peers, so its counter must move (the counting
			// works); a relay nobody talks to may rightly send nothing.
			if r.Window <= 0 || len(r.Figures()) != 3 || (tc.name == "node" && (r.CPU <= 0 || r.BytesSent <= 0)) {
				t.Fatalf("figures missing: %+v", r)
			}
			for _, f := range r.Figures() {
				t.Log(f)
			}
			if tc.name == "node" {
				// The split by peer adds up to the total.
				var sum float64
				for _, s := range r.ByPeer {
					sum += s.Bytes
				}
				if len(r.ByPeer) == 0 || math.Abs(sum-r.BytesPerHour) > 1 {
					t.Errorf("bytes by peer add up to %.0f, not %.0f: %+v", sum, r.BytesPerHour, r.ByPeer)
				}
			}
		})
	}
}

// buildSamizdat builds the binary the idle benchmarks run.
func buildSamizdat(t *testing.T) string {
	dir := worldDir(t)
	exe := filepath.Join(dir, "samizdat")
	cmd := exec.Command("go", "build", "-o", exe, "../../cmd/samizdat")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// worldDir is a temporary directory that another user id may enter.
func worldDir(t *testing.T) string {
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// BenchmarkGroupScale runs the group scale bench once per b.N with
// $SAMIZDAT_GROUP_MEMBERS members (default 100), for profiles:
//
//	go test -run '^$' -bench GroupScale -benchtime 1x -cpuprofile cpu.out ./internal/app
func BenchmarkGroupScale(b *testing.B) {
	n := 100
	if s := os.Getenv("SAMIZDAT_GROUP_MEMBERS"); s != "" {
		fmt.Sscan(s, &n)
	}
	for range b.N {
		r, err := RunGroupScale(context.Background(), b.TempDir(), GroupScaleOptions{Members: n, Messages: 5})
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range r.Figures() {
			b.Log(f)
		}
	}
}

// BenchmarkChannelScale runs the channel scale bench with
// $SAMIZDAT_CHANNEL_SUBS subscribers (default 100) and, to compare
// gossipsub parameters, $SAMIZDAT_GOSSIP_D as D (Dlo D−1, Dhi 2D):
//
//	SAMIZDAT_GOSSIP_D=4 go test -run '^$' -bench ChannelScale -benchtime 1x ./internal/app
func BenchmarkChannelScale(b *testing.B) {
	n, d := 100, 0
	if s := os.Getenv("SAMIZDAT_CHANNEL_SUBS"); s != "" {
		fmt.Sscan(s, &n)
	}
	var gp p2p.GossipParams
	if s := os.Getenv("SAMIZDAT_HEARTBEAT"); s != "" {
		gp.Heartbeat, _ = time.ParseDuration(s)
	}
	if s := os.Getenv("SAMIZDAT_GOSSIP_D"); s != "" {
		fmt.Sscan(s, &d)
		gp.D, gp.Dlo, gp.Dhi = d, d-1, 2*d
	}
	for range b.N {
		r, err := RunChannelScale(context.Background(), b.TempDir(), ChannelScaleOptions{Subscribers: n, Gossip: gp})
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range r.Figures() {
			b.Log(f)
		}
	}
}
