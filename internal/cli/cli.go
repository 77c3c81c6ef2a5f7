// Package cli implements the samizdat command line. Commands talk to the
// running node through its local API (internal/apiclient); when no node
// runs on the profile, commands that can work offline open the profile
// directly (messages are queued durably and go out with the next `up`).
// The --json outputs are a stable interface, documented in docs/CLI.md.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/api"
	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
)

type globals struct {
	profile        string
	passphraseFile string
	stdout, stderr io.Writer
}

func (g *globals) keys() app.KeySource {
	return app.KeySource{PassphraseFile: g.passphraseFile, Passphrase: os.Getenv(app.EnvPassphrase)}
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "samizdat",
		Short:         "samizdat: a private messenger that cannot be blocked",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.profile, "profile", app.DefaultProfileDir(), "profile directory (env "+app.EnvProfile+")")
	root.PersistentFlags().StringVar(&g.passphraseFile, "passphrase-file", "", "file holding the profile passphrase (or set "+app.EnvPassphrase+")")
	root.AddCommand(initCmd(g), upCmd(g), inviteCmd(g), contactsCmd(g), sendCmd(g), retryCmd(g), messagesCmd(g), mailboxesCmd(g), statusCmd(g), demoCmd(g), benchCmd(g), relayCmd(g), soakCmd(g), openCmd(g), groupCmd(g), channelCmd(g), filesCmd(g), saveCmd(g), requestsCmd(g), acceptCmd(g), declineCmd(g), linkCmd(g), devicesCmd(g))
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "samizdat: %v\n", err)
		if isUsage(err) {
			return 2
		}
		return 1
	}
	return 0
}

type usageError struct{ error }

func isUsage(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "accepts ") || strings.HasPrefix(s, "requires at least") || strings.Contains(s, "flag needs an argument")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// backend is what commands need; the API client and an offline profile
// both provide it.
type backend interface {
	Status(ctx context.Context) (apiclient.Status, error)
	Invite(ctx context.Context) (apiclient.Invite, error)
	Contacts(ctx context.Context) ([]apiclient.Contact, error)
	AddContact(ctx context.Context, link, name string) (apiclient.Contact, error)
	Send(ctx context.Context, contact, text string) (apiclient.Message, error)
	Messages(ctx context.Context, contact string, after int64) (apiclient.Conversation, error)
	Retry(ctx context.Context, contact, id string) (apiclient.Message, error)
	Mailboxes(ctx context.Context) ([]apiclient.MailboxHost, error)
}

var _ backend = (*apiclient.Client)(nil)
var _ backend = offline{}

// busyWait bounds how long a command waits for a profile that another
// process holds: a node starting up (until its API answers) or another
// command (until it is done).
const busyWait = 30 * time.Second

// withBackend runs f against the profile's running node, or else against
// the profile opened offline. While another process holds the profile
// (a node that is starting, or another command) it waits, trying both,
// until one works.
func (g *globals) withBackend(ctx context.Context, f func(b backend, online bool) error) error {
	apiFile := filepath.Join(g.profile, app.APIFile)
	deadline := time.Now().Add(busyWait)
	for {
		c, err := apiclient.Load(ctx, apiFile)
		if err == nil {
			return f(c, true)
		}
		if !errors.Is(err, apiclient.ErrNoDaemon) {
			return err
		}
		o, err := app.OpenOffline(ctx, g.profile, g.keys())
		if err == nil {
			defer o.Close()
			return f(offline{o}, false)
		}
		if !errors.Is(err, app.ErrLocked) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w, and its local API did not answer within %v; is it stuck?", err, busyWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type offline struct{ o *app.Offline }

func (b offline) Status(ctx context.Context) (apiclient.Status, error) { return b.o.Status(ctx) }

func (b offline) Invite(ctx context.Context) (apiclient.Invite, error) {
	link, err := b.o.Messenger.Invite(ctx)
	if err != nil {
		return apiclient.Invite{}, err
	}
	short, err := b.o.Messenger.ShortInvite(ctx)
	return apiclient.Invite{AccountID: b.o.Messenger.AccountID(), Link: link, Short: short}, err
}

func (b offline) Contacts(ctx context.Context) ([]apiclient.Contact, error) {
	cs, err := b.o.Messenger.Contacts(ctx)
	out := make([]apiclient.Contact, 0, len(cs))
	for _, c := range cs {
		out = append(out, api.ToContact(c))
	}
	return out, err
}

func (b offline) AddContact(ctx context.Context, link, name string) (apiclient.Contact, error) {
	c, err := b.o.Messenger.AddContact(ctx, link, name)
	return api.ToContact(c), err
}

func (b offline) Send(ctx context.Context, contact, text string) (apiclient.Message, error) {
	m, err := b.o.Messenger.Send(ctx, contact, text)
	return api.ToMessage(m), err
}

func (b offline) Mailboxes(context.Context) ([]apiclient.MailboxHost, error) {
	return api.ToMailboxes(b.o.Messenger.Mailboxes()), nil
}

func (b offline) Retry(ctx context.Context, contact, id string) (apiclient.Message, error) {
	m, err := b.o.Messenger.Retry(ctx, contact, id)
	return api.ToMessage(m), err
}

func (b offline) Messages(ctx context.Context, contact string, after int64) (apiclient.Conversation, error) {
	c, msgs, err := b.o.Messenger.Messages(ctx, contact, after, 0)
	out := apiclient.Conversation{Contact: api.ToContact(c), Messages: make([]apiclient.Message, 0, len(msgs))}
	for _, m := range msgs {
		out.Messages = append(out.Messages, api.ToMessage(m))
	}
	return out, err
}

func jsonLine(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
