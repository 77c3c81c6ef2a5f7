package cli

import (
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
	var scale func(*cobra.Command) (bool, error)
	c := &cobra.Command{
		Use:   "bench [--messages N]",
		Short: "Measure end-to-end messages/s and latency between two local nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ran, err := scale(cmd); ran {
				return err
			}
			return app.RunBench(cmd.Context(), g.stdout, app.BenchOptions{Messages: n})
		},
	}
	scale = scaleBenchFlags(c, g)
	c.Flags().IntVar(&n, "messages", 5000, "messages to send for the throughput figure")
	return c
}
