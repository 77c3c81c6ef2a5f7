package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/app"
)

// hookFlags are `up --on-alert`, `--on-message` and their tuning.
type hookFlags struct {
	onAlert, onMessage, onRequest string
	text                          bool
	timeout, interval             time.Duration
}

func addHookFlags(c *cobra.Command, f *hookFlags) {
	c.Flags().StringVar(&f.onAlert, "on-alert", "", `command run for every alert post of a followed channel: a program path, or a JSON array of argv (["notify-send","-u","critical","Alert"]); no shell; see SAMIZDAT_* in docs/CLI.md`)
	c.Flags().StringVar(&f.onMessage, "on-message", "", "command run for a new 1:1 or group message (collapsed per chat, see --notify-interval); same form as --on-alert")
	c.Flags().StringVar(&f.onRequest, "on-request", "", "command run for a new contact request (a stranger's first message; no name or text given; collapsed, see --notify-interval); same form as --on-alert")
	c.Flags().BoolVar(&f.text, "notify-text", false, "give the message or post text to --on-alert/--on-message commands in SAMIZDAT_TEXT")
	c.Flags().DurationVar(&f.timeout, "notify-timeout", app.DefaultHookTimeout, "kill an --on-alert/--on-message command still running after this long")
	c.Flags().DurationVar(&f.interval, "notify-interval", app.DefaultHookInterval, "least time between two --on-message runs for the same chat (messages in between are collapsed; alerts never are)")
}

func (f *hookFlags) apply(o *app.Options) error {
	var err error
	if f.onAlert != "" {
		if o.Hooks.OnAlert, err = app.ParseHookCommand(f.onAlert); err != nil {
			return fmt.Errorf("--on-alert: %w", err)
		}
	}
	if f.onMessage != "" {
		if o.Hooks.OnMessage, err = app.ParseHookCommand(f.onMessage); err != nil {
			return fmt.Errorf("--on-message: %w", err)
		}
	}
	if f.onRequest != "" {
		if o.Hooks.OnRequest, err = app.ParseHookCommand(f.onRequest); err != nil {
			return fmt.Errorf("--on-request: %w", err)
		}
	}
	o.Hooks.Text, o.Hooks.Timeout, o.Hooks.Interval = f.text, f.timeout, f.interval
	return nil
}
