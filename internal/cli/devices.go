package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/identity"
)

// askSame asks the user whether both devices show code.
func askSame(in io.Reader, out io.Writer, code string, yes bool) bool {
	fmt.Fprintf(out, "code: %s\n", code)
	if yes {
		return true
	}
	fmt.Fprint(out, "Does the other device show the same code? [y/N] ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes"
}

func linkCmd(g *globals) *cobra.Command {
	var name string
	var yes, qr, noPass, noHist bool
	var listen []string
	c := &cobra.Command{
		Use:   "link [--device-name NAME] [--yes] [--qr] (on the NEW device)",
		Short: "Make this new profile a device of an account you already have: shows a link code for the other device",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ks := g.keys()
			ks.NoPassphrase = noPass
			if noPass {
				ks.Passphrase = ""
			}
			acct, err := app.LinkDevice(ctx, app.LinkOptions{
				Dir: g.profile, Keys: ks, DeviceName: name, Listen: listen,
				Show: func(link string) {
					fmt.Fprintf(g.stdout, "link: %s\n", link)
					if qr {
						_ = identity.WriteQR(g.stdout, strings.ToUpper(link))
					}
					fmt.Fprintln(g.stdout, "On a device of your account run: samizdat link accept LINK (waiting…)")
				},
				Confirm:   func(code string) bool { return askSame(cmd.InOrStdin(), g.stdout, code, yes) },
				NoHistory: noHist,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "linked: this device is now account %s\nstart it with: samizdat up\n", acct)
			return nil
		},
	}
	c.Flags().StringVar(&name, "device-name", "", "what to call this device (default: the host name)")
	c.Flags().BoolVar(&yes, "yes", false, "do not ask to compare the codes (scripts, tests)")
	c.Flags().BoolVar(&qr, "qr", false, "also draw the link code as a QR code")
	c.Flags().BoolVar(&noPass, "no-passphrase", false, "no passphrase: a random key in a 0600 file protects the store")
	c.Flags().StringSliceVar(&listen, "listen", nil, "listen address while linking (default: as samizdat up)")
	c.Flags().BoolVar(&noHist, "no-history", false, "do not take the chat history the other device offers")
	accept := &cobra.Command{
		Use:   "accept LINK [--yes] [--no-history] [--json] (on a device of the account)",
		Short: "Link the new device that shows LINK to this account",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			asJSON, _ := cmd.Flags().GetBool("json")
			yes, _ := cmd.Flags().GetBool("yes")
			noHistory, _ := cmd.Flags().GetBool("no-history")
			return g.withNode(cmd.Context(), func(c *apiclient.Client) error {
				st, err := c.StartLink(cmd.Context(), a[0])
				if err != nil {
					return err
				}
				out := g.stdout
				if asJSON {
					out = g.stderr
				}
				ok := askSame(cmd.InOrStdin(), out, st.Code, yes)
				d, err := c.ConfirmLinkHistory(cmd.Context(), st.ID, ok, !noHistory)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, d)
				}
				fmt.Fprintf(g.stdout, "linked device %s (%s)\n", d.ID, safe(d.Name))
				return nil
			})
		},
	}
	accept.Flags().Bool("yes", false, "do not ask to compare the codes (scripts, tests)")
	accept.Flags().Bool("no-history", false, "do not hand the chat history to the new device (contacts and groups only)")
	accept.Flags().Bool("json", false, "print JSON")
	c.AddCommand(accept)
	return c
}

// revokedLine says that this device was removed from its account.
func revokedLine(r *apiclient.Revocation) string {
	by := safe(r.ByName)
	if by == "" {
		by = r.By
	}
	return fmt.Sprintf("this device was removed from your account at %s by %s: it reads its history but can no longer send",
		r.At.Local().Format("2006-01-02 15:04"), by)
}

func devicesCmd(g *globals) *cobra.Command {
	printList := func(v any) {
		ds := v.(apiclient.Devices)
		if r := ds.Revoked; r != nil {
			fmt.Fprintf(g.stdout, "REVOKED: %s\n", revokedLine(r))
		}
		for _, d := range ds.Devices {
			state := ""
			switch {
			case d.This:
				state = "  (this device)"
			case d.Revoked:
				state = "  revoked " + d.RevokedAt.Local().Format("2006-01-02 15:04")
			}
			seen := "-"
			if !d.LastSeen.IsZero() {
				seen = d.LastSeen.Local().Format("2006-01-02 15:04")
			}
			if h := d.History; h != nil {
				state += "  history " + historyLine(h)
			}
			fmt.Fprintf(g.stdout, "%s  %-20s last seen %s%s\n", d.ID, safe(d.Name), seen, state)
		}
	}
	c := g.nodeCmd("devices [--json]", "List the devices of your account (name, last seen)", cobra.NoArgs,
		func(ctx context.Context, c *apiclient.Client, _ []string) (any, error) { return c.Devices(ctx) }, printList)
	revoke := g.nodeCmd("revoke ID [--json]", "Revoke a device: it gets nothing sent after, and contacts refuse what it sends", cobra.ExactArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.RevokeDevice(ctx, a[0])
		},
		func(v any) { d := v.(apiclient.Device); fmt.Fprintf(g.stdout, "revoked %s (%s)\n", d.ID, safe(d.Name)) })
	c.AddCommand(revoke)
	return c
}

// historyLine says where a history transfer stands, for devices.
func historyLine(h *apiclient.HistoryTransfer) string {
	dir := "sent"
	if h.Incoming {
		dir = "received"
	}
	switch h.State {
	case "fetching":
		return fmt.Sprintf("fetching %d/%d chunks (%d messages)", h.ChunksDone, h.ChunksTotal, h.Messages)
	case "complete":
		if h.Incoming {
			return fmt.Sprintf("received: %d messages, %d new here", h.Messages, h.Imported)
		}
		return fmt.Sprintf("%s: %d messages", dir, h.Messages)
	case "failed", "refused":
		return fmt.Sprintf("%s: %s", h.State, safe(h.Error))
	}
	return fmt.Sprintf("%s (%d messages)", h.State, h.Messages)
}
