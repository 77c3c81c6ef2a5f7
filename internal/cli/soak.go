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
		Use:   "soak [--nodes N] [--relays N] [--no-group] [--duration D] [--kill-every D] [--seed S]",
		Short: "Chaos soak: real nodes and mailbox hosts on loopback killed and restarted while they message; checks every message",
		Long: "Run N `samizdat up` processes and --relays `samizdat relay` processes (their mailbox hosts) on\n" +
			"loopback. Messages go between random pairs, and posts into a group of all nodes, while a random\n" +
			"process (node or mailbox host) is killed (SIGKILL) every --kill-every and restarted 1-3 s later.\n" +
			"Then every process comes back, and the soak checks every message whose send returned an id:\n" +
			"each receiver shows it exactly once, in the order its sender sent it, and (1:1) its sender sees\n" +
			"it delivered. Exit status 1, naming the messages, if any was lost, duplicated, out of order or\n" +
			"undelivered, or if no send was accepted at all.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Nodes < 2 || o.Duration <= 0 || o.Relays < 0 {
				return usageError{fmt.Errorf("--nodes must be at least 2, --relays at least 0 and --duration positive")}
			}
			if o.Relays == 0 {
				o.Relays = -1 // none (RunSoak's zero value means the default)
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
	c.Flags().IntVar(&o.Relays, "relays", 2, "number of mailbox hosts (samizdat relay processes, killed too; 0: none)")
	c.Flags().BoolVar(&o.NoGroup, "no-group", false, "only 1:1 messages (by default a third of the sends are posts to a group of all nodes)")
	c.Flags().DurationVar(&o.Duration, "duration", time.Minute, "how long the chaos lasts")
	c.Flags().DurationVar(&o.KillEvery, "kill-every", 5*time.Second, "kill a random node this often (negative: never)")
	c.Flags().DurationVar(&o.Settle, "settle", 2*time.Minute, "how long delivery may take after the chaos")
	c.Flags().Uint64Var(&o.Seed, "seed", 0, "random seed (0: from the clock; printed, to replay a run)")
	c.Flags().StringVar(&o.Dir, "dir", "", "keep the profiles here (default: a temporary directory, removed)")
	c.Flags().BoolVar(&verbose, "verbose", false, "log the soak's actions to stderr")
	return c
}
