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

// Renaming and deleting contacts: the change follows on the account's
// other devices (issue 17), so these need the running node.

func (g *globals) withContactNode(ctx context.Context, f func(c *apiclient.Client) error) error {
	c, err := apiclient.Load(ctx, filepath.Join(g.profile, app.APIFile))
	if errors.Is(err, apiclient.ErrNoDaemon) {
		return fmt.Errorf("%w: renaming and deleting contacts need it (start it with samizdat up)", err)
	}
	if err != nil {
		return err
	}
	return f(c)
}

func contactRenameCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "rename CONTACT NAME...",
		Short: "Rename a contact (on all your devices)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withContactNode(cmd.Context(), func(c *apiclient.Client) error {
				ct, err := c.RenameContact(cmd.Context(), args[0], strings.Join(args[1:], " "))
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, ct)
				}
				fmt.Fprintf(g.stdout, "renamed %s (%s)\n", safe(ct.Name), ct.AccountID)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func contactDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete CONTACT",
		Short: "Delete a contact and its chat (on all your devices)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withContactNode(cmd.Context(), func(c *apiclient.Client) error {
				if err := c.DeleteContact(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "deleted %s\n", safe(args[0]))
				return nil
			})
		},
	}
}
