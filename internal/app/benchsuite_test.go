package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchSuiteSmoke runs `bench --suite` at smoke sizes: every anchor is
// measured, every figure of the target table is in the report (measured,
// or "not measured" with the reason when no func is registered for it),
// and the JSON file reads back the same.
func TestBenchSuiteSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := RunSuite(ctx, SuiteOptions{Small: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rep.Anchors {
		if !a.Measured || a.Value <= 0 {
			t.Errorf("anchor %s not measured: %+v", a.Name, a)
		}
	}
	ours := map[string]bool{"1to1.throughput": true, "1to1.p50": true, "1to1.p99": true, "relay.deposits": true, "relay.depositsPipelined": true, "relay.catchup": true}
	// The scale runs at smoke size (benchsuite_scale.go): measured, no ratio
	// required (not every one has an anchor).
	scaled := map[string]bool{FigureChannelReach: true, FigureChannelBytes: true, FigureGroupEncryptions: true, FigureGroupReach: true, FigureGroupRekey: true}
	got := map[string]SuiteFigure{}
	for _, f := range rep.Figures {
		got[f.Name] = f
	}
	for _, name := range SuiteFigureNames() {
		f, ok := got[name]
		switch {
		case !ok:
			t.Errorf("figure %s missing from the report", name)
		case (ours[name] || scaled[name]) && (!f.Measured || f.Value <= 0):
			t.Errorf("figure %s not measured: %+v", name, f)
		case ours[name] && !strings.HasPrefix(name, "relay.deposits") && f.Ratio <= 0:
			t.Errorf("figure %s has no ratio to its anchor: %+v", name, f)
		case !f.Measured && !strings.HasPrefix(f.Note, "not measured"):
			t.Errorf("figure %s neither measured nor marked so: %+v", name, f)
		case f.Measured && f.Target != "" && f.Met == "" && (ours[name] || scaled[name]):
			t.Errorf("figure %s: target not judged", name)
		}
	}
	if len(rep.Figures) != len(SuiteFigureNames()) {
		t.Errorf("%d figures, want %d", len(rep.Figures), len(SuiteFigureNames()))
	}
	path := filepath.Join(t.TempDir(), "suite.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back SuiteReport
	if err := json.Unmarshal(b, &back); err != nil || len(back.Figures) != len(rep.Figures) || !back.Small {
		t.Fatalf("JSON read back: %v, %d figures", err, len(back.Figures))
	}
	var out bytes.Buffer
	rep.Print(&out)
	for _, name := range append(SuiteFigureNames(), SuiteAnchorNames()...) {
		if !strings.Contains(out.String(), "`"+name+"`") {
			t.Errorf("printed table lacks %s", name)
		}
	}
}

func TestRegisterSuiteFigureUnknown(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("RegisterSuiteFigure accepted a name the table does not have")
		}
	}()
	RegisterSuiteFigure("no.such.figure", nil)
}

// TestSuiteOnly checks which figures --only keeps.
func TestSuiteOnly(t *testing.T) {
	o := SuiteOptions{Only: []string{"1to1", "relay"}}
	for _, name := range SuiteFigureNames() {
		want := strings.HasPrefix(name, "1to1.") || strings.HasPrefix(name, "relay.")
		if o.wants(name) != want {
			t.Errorf("--only 1to1,relay: %s kept %v, want %v", name, o.wants(name), want)
		}
		if !(SuiteOptions{}).wants(name) {
			t.Errorf("no --only: %s left out", name)
		}
	}
}
