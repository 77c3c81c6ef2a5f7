package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/api"
	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/identity"
)

// Contact requests: a stranger's first contact waits here until accepted
// or declined (docs/CLI.md). They work with the node running or not.

// requestBackend is what the request commands need of a backend.
type requestBackend interface {
	Requests(ctx context.Context) ([]apiclient.Request, error)
	AcceptRequest(ctx context.Context, ref, name string) (apiclient.Contact, error)
	DeclineRequest(ctx context.Context, ref string) (apiclient.Declined, error)
}

var _ requestBackend = (*apiclient.Client)(nil)
var _ requestBackend = offline{}

func (b offline) Requests(ctx context.Context) ([]apiclient.Request, error) {
	rs, err := b.o.Messenger.Requests(ctx)
	out := make([]apiclient.Request, 0, len(rs))
	for _, r := range rs {
		out = append(out, api.ToRequest(r))
	}
	return out, err
}

func (b offline) AcceptRequest(ctx context.Context, ref, name string) (apiclient.Contact, error) {
	c, err := b.o.Messenger.AcceptRequest(ctx, ref, name)
	return api.ToContact(c), err
}

func (b offline) DeclineRequest(ctx context.Context, ref string) (apiclient.Declined, error) {
	until, err := b.o.Messenger.DeclineRequest(ctx, ref)
	return apiclient.Declined{Request: ref, Until: until.UTC()}, err
}

// requestCmd is a command run against the node or the offline profile,
// printing JSON with --json, else text.
func (g *globals) requestCmd(use, short string, args cobra.PositionalArgs, call func(ctx context.Context, b requestBackend, a []string) (any, error), text func(v any)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.withBackend(cmd.Context(), func(b backend, _ bool) error {
				rb, ok := b.(requestBackend)
				if !ok {
					return fmt.Errorf("this backend has no contact requests")
				}
				v, err := call(cmd.Context(), rb, a)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, v)
				}
				text(v)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func requestsCmd(g *globals) *cobra.Command {
	c := g.requestCmd("requests [--json]", "List contact requests: strangers' first messages, in no chat until you accept them", cobra.NoArgs,
		func(ctx context.Context, b requestBackend, _ []string) (any, error) { return b.Requests(ctx) },
		func(v any) {
			rs := v.([]apiclient.Request)
			if len(rs) == 0 {
				fmt.Fprintln(g.stdout, "no contact requests")
			}
			for _, r := range rs {
				fmt.Fprintf(g.stdout, "%d  %-20s %s  %s  %d messages\n", r.ID, safe(r.Name), identity.Short(r.AccountID),
					r.Received.Local().Format("2006-01-02 15:04"), len(r.Messages))
				for _, m := range r.Messages {
					fmt.Fprintf(g.stdout, "    %s  %s\n", m.SentAt.Local().Format("2006-01-02 15:04:05"), safe(m.Body))
				}
			}
			if len(rs) > 0 {
				fmt.Fprintln(g.stdout, "accept with  samizdat accept ID   or decline with  samizdat decline ID")
			}
		})
	return c
}

func acceptCmd(g *globals) *cobra.Command {
	var name string
	c := g.requestCmd("accept ID [--name NAME] [--json]", "Accept a contact request (ID or account id): a contact, its messages in its chat", cobra.ExactArgs(1),
		func(ctx context.Context, b requestBackend, a []string) (any, error) {
			return b.AcceptRequest(ctx, a[0], name)
		},
		func(v any) {
			ct := v.(apiclient.Contact)
			fmt.Fprintf(g.stdout, "%s is now a contact (%s)\n", safe(ct.Name), ct.AccountID)
		})
	c.Flags().StringVar(&name, "name", "", "name the contact (default: the name on their card)")
	return c
}

func declineCmd(g *globals) *cobra.Command {
	c := g.requestCmd("decline ID [--json]", "Decline a contact request (ID or account id): deleted, its account refused for 30 days", cobra.ExactArgs(1),
		func(ctx context.Context, b requestBackend, a []string) (any, error) {
			return b.DeclineRequest(ctx, a[0])
		},
		func(v any) {
			d := v.(apiclient.Declined)
			fmt.Fprintf(g.stdout, "declined %s; its messages are refused until %s\n", safe(d.Request), d.Until.Local().Format("2006-01-02"))
		})
	return c
}
