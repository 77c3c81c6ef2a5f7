package app

// `samizdat bench --suite` (issue 18): every figure of the target
// table beside an anchor measured in the same run (bare libp2p round trip
// and stream copy, a raw commit on the same encrypted VFS, gossipsub
// without our layer), as a ratio, written as JSON too.
//
// Figures measured elsewhere (the scale runs: a channel to 1,000 nodes, a
// 1,000-member group, idle cost) plug in through RegisterSuiteFigure. A
// figure nobody registered is reported "not measured", never invented.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// SuiteFigure is one figure of the suite.
type SuiteFigure struct {
	Name   string `json:"name"`   // stable key, e.g. "relay.deposits"
	Figure string `json:"figure"` // what is measured, in the words
	Target string `json:"target"` // the target ("" for an anchor or a figure without one)
	// Value is the figure in Unit; meaningful only when Measured.
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Measured bool    `json:"measured"`
	// Anchor names the anchor figure Value is compared with, AnchorValue
	// is its value in AnchorUnit, and Ratio is Value / AnchorValue (both
	// zero when there is no anchor).
	Anchor      string  `json:"anchor,omitempty"`
	AnchorValue float64 `json:"anchorValue,omitempty"`
	AnchorUnit  string  `json:"anchorUnit,omitempty"`
	Ratio       float64 `json:"ratio,omitempty"`
	// Met says whether the target is met ("yes", "no"), "" when there is
	// no target or no measurement.
	Met  string `json:"met,omitempty"`
	Note string `json:"note,omitempty"`
}

// SuiteReport is the JSON file of one suite run.
type SuiteReport struct {
	Date    string        `json:"date"`
	Small   bool          `json:"small"` // smoke sizes: the figures say nothing about speed
	Go      string        `json:"go"`
	CPUs    int           `json:"cpus"`
	Anchors []SuiteFigure `json:"anchors"`
	Figures []SuiteFigure `json:"figures"`
}

// SuiteOptions size a suite run.
type SuiteOptions struct {
	// Small runs every figure at smoke sizes (seconds in all): the test
	// run uses it to check that every figure is produced.
	Small bool
	// Only, when not empty, measures only the figures whose names start
	// with one of these prefixes ("1to1", "relay"); the anchors are all
	// measured, the other figures say "not measured: left out".
	Only []string
}

// wants reports whether the run measures figure name.
func (o SuiteOptions) wants(name string) bool {
	if len(o.Only) == 0 {
		return true
	}
	for _, p := range o.Only {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// SuiteEnv is what a figure func gets: the run's size and the anchors
// measured before it.
type SuiteEnv struct {
	Small   bool
	anchors map[string]SuiteFigure
}

// Anchor returns the anchor figure named name (see SuiteAnchors) and
// whether it was measured.
func (e *SuiteEnv) Anchor(name string) (SuiteFigure, bool) {
	a, ok := e.anchors[name]
	return a, ok && a.Measured
}

// SuiteFigureFunc measures one figure of the target table. It returns the
// figure with Value, Unit and Measured set (and Anchor/AnchorValue if it
// compares itself with one; the suite fills Name, Figure, Target, Ratio).
type SuiteFigureFunc func(ctx context.Context, env *SuiteEnv) (SuiteFigure, error)

// The target table, in order. Figures with a func are measured by
// this package; the others wait for RegisterSuiteFigure.
var suiteTable = []struct {
	name, figure, target string
	anchor               string
	fn                   SuiteFigureFunc
}{
	{"1to1.throughput", "1:1 end to end, two nodes: messages/s", "≥ 10,000 msgs/s", AnchorCommit, suite1to1Throughput},
	{"1to1.p50", "1:1 end to end, two nodes: latency p50", "≤ 3× the floor", AnchorRTT, suite1to1P50},
	{"1to1.p99", "1:1 end to end, two nodes: latency p99", "< 10 ms", AnchorRTT, suite1to1P99},
	{"relay.deposits", "relay deposits, many depositors", "≥ 20,000 deposits/s", AnchorCommit, suiteRelayDeposits},
	{"relay.depositsPipelined", "relay deposits, many depositors, each pipelining a batch on one stream", "≥ 20,000 deposits/s", AnchorCommit, suiteRelayPipelined},
	{"relay.catchup", "relay catch-up of 10,000 messages", "< 3 s", AnchorCopy, suiteRelayCatchUp},
	{FigureChannelReach, "channel post to 1,000 nodes: time until 99 % have it", "≤ 500 ms", AnchorGossip, nil},
	{FigureChannelBytes, "channel post to 1,000 nodes: bytes per subscriber per 100-byte post", "≤ 2,000 B", "", nil},
	{FigureGroupEncryptions, "1,000-member group: encryptions per message", "1", "", nil},
	{FigureGroupReach, "1,000-member group: time until a message reaches 99 %", "< 1 s", AnchorGossip, nil},
	{FigureGroupRekey, "1,000-member group: time for a removal to re-key", "< 5 s", "", nil},
	{FigureIdleCPU, "idle node (50 contacts, 10 groups, 5 channels): CPU seconds per hour", "< 30 s", "", nil},
	{FigureIdleBytes, "idle node (50 contacts, 10 groups, 5 channels): bytes sent per hour", "< 1 MB", "", nil},
	{FigureIdleRelayCPU, "idle relay serving 1,000 mailboxes: CPU seconds per hour", "", "", nil},
	{FigureIdleRelayBytes, "idle relay serving 1,000 mailboxes: bytes sent per hour", "", "", nil},
}

// Names of the figures the scale runs provide (RegisterSuiteFigure).
const (
	FigureChannelReach     = "channel1000.reach99"
	FigureChannelBytes     = "channel1000.bytesPerSubscriber"
	FigureGroupEncryptions = "group1000.encryptionsPerMessage"
	FigureGroupReach       = "group1000.reach99"
	FigureGroupRekey       = "group1000.rekey"
	FigureIdleCPU          = "idle.cpuSecondsPerHour"
	FigureIdleBytes        = "idle.bytesSentPerHour"
	FigureIdleRelayCPU     = "idleRelay.cpuSecondsPerHour"
	FigureIdleRelayBytes   = "idleRelay.bytesSentPerHour"
)

var (
	suiteMu    sync.Mutex
	suiteFuncs = map[string]SuiteFigureFunc{}
)

// RegisterSuiteFigure provides the func measuring the target-table figure
// name (one of the Figure… constants), typically from an init func in the
// file that holds the scale run. It panics on an unknown name (a
// programmer bug).
func RegisterSuiteFigure(name string, fn SuiteFigureFunc) {
	for _, f := range suiteTable {
		if f.name == name {
			suiteMu.Lock()
			suiteFuncs[name] = fn
			suiteMu.Unlock()
			return
		}
	}
	panic("app: RegisterSuiteFigure: no suite figure " + name)
}

func suiteFunc(i int) SuiteFigureFunc {
	if fn := suiteTable[i].fn; fn != nil {
		return fn
	}
	suiteMu.Lock()
	defer suiteMu.Unlock()
	return suiteFuncs[suiteTable[i].name]
}

// RunSuite measures the anchors, then every figure, and returns the
// report. A figure whose measurement fails is reported unmeasured with
// the error as its note; the run goes on.
func RunSuite(ctx context.Context, o SuiteOptions, progress io.Writer) (*SuiteReport, error) {
	if progress == nil {
		progress = io.Discard
	}
	rep := &SuiteReport{Date: time.Now().UTC().Format(time.RFC3339), Small: o.Small, Go: runtime.Version(), CPUs: runtime.NumCPU()}
	env := &SuiteEnv{Small: o.Small, anchors: map[string]SuiteFigure{}}
	st := &suiteState{}
	defer st.close()
	ctx = context.WithValue(ctx, suiteStateKey{}, st)
	for _, a := range suiteAnchors {
		fmt.Fprintf(progress, "anchor %s …\n", a.name)
		f, err := a.fn(ctx, env)
		f.Name, f.Figure = a.name, a.figure
		if err != nil {
			f.Measured, f.Note = false, "not measured: "+err.Error()
		}
		env.anchors[a.name] = f
		rep.Anchors = append(rep.Anchors, f)
	}
	for i, row := range suiteTable {
		fmt.Fprintf(progress, "figure %s …\n", row.name)
		fn := suiteFunc(i)
		var f SuiteFigure
		if !o.wants(row.name) {
			f.Note = "not measured: left out (--only)"
		} else if fn == nil {
			f.Note = "not measured: no figure func registered (app.RegisterSuiteFigure)"
		} else if g, err := fn(ctx, env); err != nil {
			f.Note = "not measured: " + err.Error()
		} else {
			f = g
		}
		f.Name, f.Figure, f.Target = row.name, row.figure, row.target
		if f.Anchor == "" && row.anchor != "" {
			if a, ok := env.Anchor(row.anchor); ok {
				f.Anchor, f.AnchorValue, f.AnchorUnit = a.Name, a.Value, a.Unit
			}
		}
		if f.Measured && f.AnchorValue != 0 {
			f.Ratio = f.Value / f.AnchorValue
		}
		if f.Measured && f.Met == "" {
			f.Met = suiteMet(row.name, f)
		}
		rep.Figures = append(rep.Figures, f)
	}
	return rep, nil
}

// suiteMet judges the figures whose targets this package knows.
func suiteMet(name string, f SuiteFigure) string {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	switch name {
	case "1to1.throughput":
		return yes(f.Value >= 10000)
	case "1to1.p50":
		return yes(f.AnchorValue > 0 && f.Ratio <= 3)
	case "1to1.p99":
		return yes(f.Value < 10)
	case "relay.deposits", "relay.depositsPipelined":
		return yes(f.Value >= 20000)
	case "relay.catchup":
		return yes(f.Value < 3)
	}
	return ""
}

// WriteJSON writes the report to path.
func (r *SuiteReport) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Print writes the report as two Markdown tables (anchors, figures), the
// form docs/BENCHMARKS.md keeps.
func (r *SuiteReport) Print(w io.Writer) {
	size := "full size"
	if r.Small {
		size = "SMOKE SIZES (the figures say nothing about speed)"
	}
	fmt.Fprintf(w, "samizdat bench --suite, %s, %s, %d CPUs, %s\n\n", r.Date, r.Go, r.CPUs, size)
	fmt.Fprintln(w, "| anchor | value |")
	fmt.Fprintln(w, "|---|---|")
	for _, a := range r.Anchors {
		fmt.Fprintf(w, "| %s (`%s`) | %s |\n", a.Figure, a.Name, fmtValue(a))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | target | measured | anchor | ratio | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, f := range r.Figures {
		anchor, ratio := "–", "–"
		if f.Anchor != "" {
			anchor = fmt.Sprintf("%s %s", fmtNum(f.AnchorValue), f.AnchorUnit)
			if f.Ratio != 0 {
				ratio = fmt.Sprintf("%s×", fmtNum(f.Ratio))
			}
		}
		met := f.Met
		if met == "" {
			met = "–"
		}
		fmt.Fprintf(w, "| %s (`%s`) | %s | %s | %s | %s | %s |\n", f.Figure, f.Name, orDash(f.Target), fmtValue(f), anchor, ratio, met)
	}
}

func fmtValue(f SuiteFigure) string {
	if !f.Measured {
		if f.Note != "" {
			return f.Note
		}
		return "not measured"
	}
	s := fmtNum(f.Value) + " " + f.Unit
	if f.Note != "" {
		s += " (" + f.Note + ")"
	}
	return s
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 0.1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// SuiteFigureNames lists the target table's figure names, in order.
func SuiteFigureNames() []string {
	out := make([]string, len(suiteTable))
	for i, f := range suiteTable {
		out[i] = f.name
	}
	return out
}

// SuiteAnchorNames lists the anchors, sorted.
func SuiteAnchorNames() []string {
	out := make([]string, len(suiteAnchors))
	for i, a := range suiteAnchors {
		out[i] = a.name
	}
	sort.Strings(out)
	return out
}
