package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
)

// Files travel between running nodes (the sender serves the chunks, the
// receiver fetches them): their commands need the running node.

func (g *globals) withFileNode(ctx context.Context, f func(c *apiclient.Client) error) error {
	c, err := apiclient.Load(ctx, filepath.Join(g.profile, app.APIFile))
	if errors.Is(err, apiclient.ErrNoDaemon) {
		return fmt.Errorf("%w: files need it, as it serves and fetches them (start it with samizdat up)", err)
	}
	if err != nil {
		return err
	}
	return f(c)
}

// sendFile is `samizdat send CONTACT --file PATH [TEXT]`.
func (g *globals) sendFile(cmd *cobra.Command, args []string, path string, asJSON bool) error {
	abs, err := filepath.Abs(path) // the node runs elsewhere
	if err != nil {
		return err
	}
	return g.withFileNode(cmd.Context(), func(c *apiclient.Client) error {
		m, err := c.SendFile(cmd.Context(), args[0], abs, strings.Join(args[1:], " "))
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(g.stdout, m)
		}
		fmt.Fprintln(g.stdout, m.ID)
		return nil
	})
}

func filesCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "files [--json]",
		Short: "List files sent and received, with transfer progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withFileNode(cmd.Context(), func(c *apiclient.Client) error {
				ts, err := c.Files(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, ts)
				}
				for _, t := range ts {
					dir := "to  "
					if t.Incoming {
						dir = "from"
					}
					pct := 100
					if t.Total > 0 {
						pct = 100 * t.Done / t.Total
					}
					who := fmt.Sprintf("contact %d", t.ContactID)
					if t.Group != "" {
						who = "group " + t.Group[:min(12, len(t.Group))]
					}
					line := fmt.Sprintf("%s  %s %s  %-9s %3d%%  %10d  %s", t.MessageID, dir, who, t.State, pct, t.Size, safe(t.Name))
					if !t.Incoming {
						line += fmt.Sprintf("  served %d/%d chunks", t.ChunksServed, t.Total)
					}
					if t.Error != "" {
						line += "  (" + safe(t.Error) + ")"
					}
					switch t.HostState {
					case "deposited":
						line += "  [at the contact's mailbox hosts]"
					case "over-quota":
						line += "  [too large for the contact's mailbox hosts: waits here until the contact is online]"
					case "depositing":
						line += "  [going to the contact's mailbox hosts]"
					}
					if h := t.Holders; h != nil {
						line += "  " + holdersText(h)
					}
					fmt.Fprintln(g.stdout, line)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func saveCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "save MESSAGE-ID PATH",
		Short: "Write a received file to PATH (which must not exist) once it is complete",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			abs, err := filepath.Abs(args[1])
			if err != nil {
				return err
			}
			return g.withFileNode(cmd.Context(), func(c *apiclient.Client) error {
				if err := c.SaveFile(cmd.Context(), args[0], abs); err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, apiclient.SaveFileRequest{MessageID: args[0], Path: abs})
				}
				fmt.Fprintln(g.stdout, abs)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// holdersText says where a file sent to a group stands with its members.
func holdersText(h *apiclient.FileHolders) string {
	if h.Done == h.Members {
		return fmt.Sprintf("[all %d members have it]", h.Members)
	}
	s := fmt.Sprintf("[%d/%d members have it", h.Done, h.Members)
	if h.Fetching > 0 {
		s += fmt.Sprintf(", %d fetching", h.Fetching)
	}
	if h.Offline > 0 {
		s += fmt.Sprintf("; waits here and at %d members for %d offline", h.Done, h.Offline)
	}
	return s + "]"
}
