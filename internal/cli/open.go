package cli

import (
	"context"
	"errors"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
)

func waitingMessage(state string) string {
	if state == apiclient.SetupLocked {
		return "samizdat is waiting for the passphrase of this profile: type it in the web app (or restart with --passphrase-file)"
	}
	return "no profile yet: create it in the web app (or stop and run samizdat init)"
}

func openCmd(g *globals) *cobra.Command {
	var noBrowser bool
	c := &cobra.Command{
		Use:   "open [--no-browser]",
		Short: "Open the web app of the running node (prints a one-time address)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			apiFile := filepath.Join(g.profile, app.APIFile)
			c, err := apiclient.Load(cmd.Context(), apiFile)
			if err != nil {
				if errors.Is(err, apiclient.ErrNoDaemon) {
					return errors.New("no samizdat node is running on this profile: start it with  samizdat up")
				}
				return err
			}
			code, err := c.LoginCode(cmd.Context())
			if err != nil {
				return err
			}
			u := app.LoginURL(c.Addr(), code)
			fmt.Fprintln(g.stdout, u)
			if !noBrowser {
				launchBrowser(cmd.Context(), g.profile, u)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the address")
	return c
}

// OpenFile is the page samizdat open hands to the browser: it forwards to
// the web app's one-time address. The address is not put on the browser's
// command line, where any local user reads it (/proc/*/cmdline): the
// browser gets this file's path, and the file is readable by its owner
// only (0600, in the 0700 profile directory).
const OpenFile = "open.html"

// launchBrowser hands the address to the desktop's browser when there is
// a desktop; failures are silent (the address is printed anyway).
func launchBrowser(ctx context.Context, dir, u string) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return
	}
	p, err := exec.LookPath("xdg-open")
	if err != nil {
		return
	}
	page := filepath.Join(dir, OpenFile)
	q := html.EscapeString(u)
	body := `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=` + q + `"><title>samizdat</title><a href="` + q + `">samizdat</a>` + "\n"
	_ = os.Remove(page) // a file of another mode is replaced, not reused
	if err := os.WriteFile(page, []byte(body), 0o600); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, p, page).Run()
}
