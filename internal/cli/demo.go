package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/app"
)

func demoCmd(g *globals) *cobra.Command {
	var keep, verbose bool
	c := &cobra.Command{
		Use:   "demo [--keep]",
		Short: "Run alice, bob and carol on this machine and show messages being delivered",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := app.DemoOptions{Keep: keep}
			if verbose {
				o.Logger = slog.New(slog.NewTextHandler(g.stderr, nil))
			}
			return app.RunDemo(cmd.Context(), g.stdout, o)
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the three profiles and print where they are")
	c.Flags().BoolVar(&verbose, "verbose", false, "show the nodes' logs")
	return c
}

func benchCmd(g *globals) *cobra.Command {
	var n int
	var relay, suite, small bool
	var out, cpuprofile string
	var pipelined int
	var only []string
	var ro app.RelayBenchOptions
	var scale func(*cobra.Command) (bool, error)
	c := &cobra.Command{
		Use:   "bench [--messages N] | --relay [--users N] [--deposits N] [--mailboxes N] [--catch-up N] [--pipelined N] | --suite [--out FILE] [--small] [--only PREFIX,…] [--cpuprofile FILE]",
		Short: "Measure end-to-end messages/s and latency between two local nodes, a relay's capacity, or the whole suite",
		Long: "Without flags: two local nodes, messages/s and latency beside the bare libp2p round trip.\n" +
			"--relay: one relay on loopback driven by many simulated users (deposits/s, catch-up, cost per mailbox).\n" +
			"--suite: every figure of the performance targets beside its anchor measured in the same run, as a\n" +
			"Markdown table, and as JSON with --out. Everything runs on loopback.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cpuprofile != "" {
				stop, err := startCPUProfile(cpuprofile)
				if err != nil {
					return err
				}
				defer stop()
			}
			if ran, err := scale(cmd); ran {
				return err
			}
			ro.Pipelined = pipelined
			if pipelined == 0 {
				ro.Pipelined = -1 // skip the pipelined run
			}
			switch {
			case relay && suite:
				return usageError{fmt.Errorf("--relay and --suite are separate runs: give one")}
			case suite:
				rep, err := app.RunSuite(cmd.Context(), app.SuiteOptions{Small: small, Only: only}, g.stderr)
				if err != nil {
					return err
				}
				rep.Print(g.stdout)
				if out != "" {
					if err := rep.WriteJSON(out); err != nil {
						return err
					}
					fmt.Fprintf(g.stdout, "\nwritten: %s\n", out)
				}
				return nil
			case relay:
				res, err := app.RunRelayBench(cmd.Context(), ro)
				if err != nil {
					return err
				}
				app.PrintRelayBench(g.stdout, ro, res)
				return nil
			}
			return app.RunBench(cmd.Context(), g.stdout, app.BenchOptions{Messages: n})
		},
	}
	scale = scaleBenchFlags(c, g)
	c.Flags().IntVar(&n, "messages", 5000, "messages to send for the throughput figure")
	c.Flags().BoolVar(&relay, "relay", false, "measure one relay driven by many simulated users instead")
	c.Flags().IntVar(&ro.Users, "users", 50, "--relay: simulated users (libp2p hosts)")
	c.Flags().IntVar(&ro.PerUser, "depositors-per-user", 4, "--relay: concurrent depositors per user")
	c.Flags().IntVar(&ro.Deposits, "deposits", 20000, "--relay: deposits timed")
	c.Flags().IntVar(&ro.Mailboxes, "mailboxes", 1000, "--relay: mailboxes they go to")
	c.Flags().IntVar(&ro.CatchUp, "catch-up", 10000, "--relay: envelopes waiting in one mailbox for the catch-up figure")
	c.Flags().IntVar(&pipelined, "pipelined", 50, "--relay: a second run of the deposits, N pipelined on each stream (0: skip it)")
	c.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to FILE (go tool pprof)")
	c.Flags().BoolVar(&suite, "suite", false, "run every figure of the performance targets beside its anchor")
	c.Flags().StringVar(&out, "out", "", "--suite: also write the report as JSON to FILE")
	c.Flags().StringSliceVar(&only, "only", nil, "--suite: measure only the figures whose names start with these (e.g. 1to1,relay); the anchors always")
	c.Flags().BoolVar(&small, "small", false, "--suite: smoke sizes (checks that every figure is produced; says nothing about speed)")
	return c
}
