package app

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// The idle benchmark's breakdown by protocol (benchidle.go): a node
// started with $SAMIZDAT_BENCH_BANDWIDTH naming a file counts its streams'
// bytes by protocol and writes them there as JSON every bandwidthDumpEvery
// (write to a temporary file, then rename: a reader never sees half of
// one). Only the benchmark sets it; the counter costs a little CPU.
const (
	bandwidthEnv       = "SAMIZDAT_BENCH_BANDWIDTH"
	bandwidthDumpEvery = 5 * time.Second
)

// bandwidthWanted reports whether the benchmark asked for the breakdown.
func bandwidthWanted() bool { return os.Getenv(bandwidthEnv) != "" }

// startBandwidthDump writes n's per-protocol stream bytes to the file
// $SAMIZDAT_BENCH_BANDWIDTH names until ctx ends.
func (n *Node) startBandwidthDump(ctx context.Context) {
	path := os.Getenv(bandwidthEnv)
	if path == "" || n.P2P.BandwidthByProtocol() == nil {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		t := time.NewTicker(bandwidthDumpEvery)
		defer t.Stop()
		for {
			writeBandwidth(path, n.P2P.BandwidthByProtocol())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func writeBandwidth(path string, by map[string]p2p.StreamBytes) {
	b, err := json.Marshal(by)
	if err != nil {
		return
	}
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, path)
	}
}

// readBandwidth reads a file startBandwidthDump wrote (nil if none yet).
func readBandwidth(path string) map[string]p2p.StreamBytes {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var by map[string]p2p.StreamBytes
	if json.Unmarshal(b, &by) != nil {
		return nil
	}
	return by
}
