package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/app"
)

// scaleBenchFlags adds the scale runs of issue 18 to `samizdat bench`
// (app/benchscale.go): --channel-subscribers N, --group-members N,
// --idle [--idle-window D] [--idle-settle D], --idle-relay. The returned function runs the
// one asked for and reports whether one was.
func scaleBenchFlags(c *cobra.Command, g *globals) func(cmd *cobra.Command) (bool, error) {
	var subs, members int
	var idle, idleRelay, verbose bool
	var window, settle time.Duration
	c.Flags().IntVar(&subs, "channel-subscribers", 0, "measure one channel post reaching N subscriber nodes on loopback")
	c.Flags().IntVar(&members, "group-members", 0, "measure a group of N members: adds, one message to all, a removal")
	c.Flags().BoolVar(&idle, "idle", false, "measure an idle node's CPU and bytes sent (50 contacts, 10 groups, 5 channels)")
	c.Flags().BoolVar(&idleRelay, "idle-relay", false, "measure an idle relay's CPU and bytes sent (1,000 mailboxes)")
	c.Flags().DurationVar(&window, "idle-window", 5*time.Minute, "how long --idle and --idle-relay measure")
	c.Flags().DurationVar(&settle, "idle-settle", 30*time.Second, "how long --idle and --idle-relay let the process start before measuring")
	c.Flags().BoolVar(&verbose, "progress", false, "print the scale runs' progress")
	return func(cmd *cobra.Command) (bool, error) {
		name, size := "", 0
		switch {
		case subs > 0:
			name, size = "channel", subs
		case members > 0:
			name, size = "group", members
		case idle:
			name, size = "idle-node", int(window.Seconds())
		case idleRelay:
			name, size = "idle-relay", int(window.Seconds())
		default:
			return false, nil
		}
		app.IdleSettle = settle
		return true, app.RunScaleBench(cmd.Context(), g.stdout, name, size, verbose)
	}
}
