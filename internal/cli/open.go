package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
		Short: "Open the web app of the running node (prints its one-click address)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			apiFile := filepath.Join(g.profile, app.APIFile)
			if _, err := apiclient.Load(cmd.Context(), apiFile); err != nil {
				if errors.Is(err, apiclient.ErrNoDaemon) {
					return errors.New("no samizdat node is running on this profile: start it with  samizdat up")
				}
				return err
			}
			info, err := readInfo(apiFile)
			if err != nil {
				return err
			}
			u := app.WebURL(info.Addr, info.Token)
			fmt.Fprintln(g.stdout, u)
			if !noBrowser {
				launchBrowser(cmd.Context(), u)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the address")
	return c
}

// launchBrowser hands the address to the desktop's browser when there is
// a desktop; failures are silent (the address is printed anyway).
func launchBrowser(ctx context.Context, u string) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return
	}
	p, err := exec.LookPath("xdg-open")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, p, u).Run()
}

func readInfo(path string) (apiclient.Info, error) {
	var info apiclient.Info
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Addr == "" {
		return info, fmt.Errorf("%s is damaged: restart samizdat up", path)
	}
	return info, nil
}
