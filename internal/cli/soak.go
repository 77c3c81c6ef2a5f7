package cli

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/app"
)

func soakCmd(g *globals) *cobra.Command {
	var o app.SoakOptions
	var verbose bool
	c := &cobra.Command{
		Use:   "soak [--nodes N] [--duration D] [--kill-every D] [--seed S]",
		Short: "Chaos soak: real nodes on loopback killed and restarted while they message; counts lost and duplicated messages",
		Long: "Run N `samizdat up` processes and a volunteer relay on loopback. Messages go between random\n" +
			"pairs while a random node is killed (SIGKILL) every --kill-every and restarted a moment later.\n" +
			"Then every node comes back, and the soak counts, for each message a node accepted, whether it\n" +
			"was delivered and how often the recipient has it. Exit status 1 if any was lost or duplicated.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Nodes < 2 || o.Duration <= 0 {
				return usageError{fmt.Errorf("--nodes must be at least 2 and --duration positive")}
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Exe = exe
			if verbose {
				o.Logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			}
			_, err = app.RunSoak(cmd.Context(), g.stdout, o)
			return err
		},
	}
	c.Flags().IntVar(&o.Nodes, "nodes", 3, "number of user nodes")
	c.Flags().DurationVar(&o.Duration, "duration", time.Minute, "how long the chaos lasts")
	c.Flags().DurationVar(&o.KillEvery, "kill-every", 5*time.Second, "kill a random node this often (negative: never)")
	c.Flags().DurationVar(&o.Settle, "settle", 2*time.Minute, "how long delivery may take after the chaos")
	c.Flags().Uint64Var(&o.Seed, "seed", 0, "random seed (0: from the clock; printed, to replay a run)")
	c.Flags().StringVar(&o.Dir, "dir", "", "keep the profiles here (default: a temporary directory, removed)")
	c.Flags().BoolVar(&verbose, "verbose", false, "log the soak's actions to stderr")
	return c
}
