package app

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
)

// The scale runs (benchscale.go, benchgroup.go, benchidle.go) as figures
// of the suite. One run of a scale bench yields several figures: it runs
// once per suite run and its figures are picked by what they measure.

func init() {
	pick := func(bench, contains string) SuiteFigureFunc {
		return func(ctx context.Context, env *SuiteEnv) (SuiteFigure, error) {
			figs, err := scaleRun(ctx, env, bench)
			if err != nil {
				return SuiteFigure{}, err
			}
			for _, f := range figs {
				if strings.Contains(f.Name, contains) {
					return SuiteFigure{Value: f.Value, Unit: f.Unit, Measured: true, Met: metWord(f.Met), Note: f.Name}, nil
				}
			}
			return SuiteFigure{}, fmt.Errorf("the %s run gave no figure %q", bench, contains)
		}
	}
	RegisterSuiteFigure(FigureChannelReach, pick("channel", "p50"))
	RegisterSuiteFigure(FigureChannelBytes, pick("channel", "bytes sent per subscriber"))
	RegisterSuiteFigure(FigureGroupEncryptions, pick("group", "encryptions per message"))
	RegisterSuiteFigure(FigureGroupReach, pick("group", "message to 99 %"))
	RegisterSuiteFigure(FigureGroupRekey, pick("group", "removal re-keys"))
	RegisterSuiteFigure(FigureIdleCPU, pick("idle-node", "CPU per hour"))
	RegisterSuiteFigure(FigureIdleBytes, pick("idle-node", "bytes sent per hour"))
	RegisterSuiteFigure(FigureIdleRelayCPU, pick("idle-relay", "CPU per hour"))
	RegisterSuiteFigure(FigureIdleRelayBytes, pick("idle-relay", "bytes sent per hour"))
}

func metWord(met *bool) string {
	switch {
	case met == nil:
		return ""
	case *met:
		return "yes"
	}
	return "no"
}

// scaleRuns keeps each suite run's scale results (by its env).
var scaleRuns sync.Map // *SuiteEnv+bench → scaleResult

type scaleResult struct {
	once sync.Once
	figs []ScaleFigure
	err  error
}

func scaleRun(ctx context.Context, env *SuiteEnv, bench string) ([]ScaleFigure, error) {
	v, _ := scaleRuns.LoadOrStore(fmt.Sprintf("%p/%s", env, bench), &scaleResult{})
	r := v.(*scaleResult)
	r.once.Do(func() { r.figs, r.err = runScaleForSuite(ctx, env, bench) })
	return r.figs, r.err
}

func runScaleForSuite(ctx context.Context, env *SuiteEnv, bench string) ([]ScaleFigure, error) {
	for _, b := range ScaleBenches {
		if b.Name != bench {
			continue
		}
		if strings.HasPrefix(bench, "idle") && env.Small {
			// The idle runs start the binary as another user and count its
			// packets with iptables: TestScaleIdleSmoke covers them.
			return nil, fmt.Errorf("idle runs are left out of the smoke run (TestScaleIdleSmoke runs them); `samizdat bench --suite` measures them")
		}
		if strings.HasPrefix(bench, "idle") && os.Geteuid() != 0 {
			return nil, fmt.Errorf("the idle runs need root (iptables counters); run as root")
		}
		size := b.Full
		if env.Small {
			size = b.Smoke
		}
		dir, err := os.MkdirTemp("", "samizdat-suite-"+bench+"-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		// The idle runs start the node under a user id of its own: it must
		// be able to reach its profile below dir (RunScaleBench does the
		// same; without it the node exited at once in a full suite run).
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, err
		}
		return b.Run(ctx, dir, size, nil)
	}
	return nil, fmt.Errorf("no scale bench %q", bench)
}
