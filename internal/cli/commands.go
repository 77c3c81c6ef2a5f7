package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/app"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/media"
)

func initCmd(g *globals) *cobra.Command {
	var name string
	var noPass bool
	c := &cobra.Command{
		Use:   "init --name NAME [--passphrase-file F | --no-passphrase]",
		Short: "Create a profile: your identity and encrypted store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks := g.keys()
			ks.NoPassphrase = noPass
			if noPass {
				ks.Passphrase = "" // --no-passphrase wins over the environment
			}
			acct, err := app.Init(cmd.Context(), g.profile, name, ks)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "created profile %s\naccount id: %s\n", g.profile, acct)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "your name, as your contacts will see it")
	c.Flags().BoolVar(&noPass, "no-passphrase", false, "no passphrase: a random key in a 0600 file protects the store")
	return c
}

func upCmd(g *globals) *cobra.Command {
	var listen, bootstrap, mailboxHosts, relays []string
	var apiAddr, logLevel, maxFile, maxChanFile string
	var partialAge time.Duration
	var dht, behindNAT, noReceipts bool
	var hf hookFlags
	var mb serveMailboxFlags
	var tf transportFlags
	var mf meshFlags
	c := &cobra.Command{
		Use:   "up [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--api 127.0.0.1:PORT]",
		Short: "Run the node in the foreground (Ctrl-C stops it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hosts, err := app.ParseMailboxHosts(mailboxHosts)
			if err != nil {
				return usageError{err}
			}
			o := app.Options{Dir: g.profile, Keys: g.keys(), Listen: listen, Bootstrap: bootstrap, APIAddr: apiAddr, EnableDHT: dht, Logger: log}
			if err := mf.apply(&o); err != nil {
				return usageError{err}
			}
			o.Messenger.MailboxHosts = hosts
			o.Relays, o.BehindNAT = relays, behindNAT
			o.Messenger.NoReadReceipts = noReceipts
			if err := hf.apply(&o); err != nil {
				return usageError{err}
			}
			if o.MaxFileSize, err = parseSize(maxFile); err != nil || o.MaxFileSize <= 0 {
				return usageError{fmt.Errorf("--max-file-size: %q is not a size such as 2GiB", maxFile)}
			}
			if partialAge <= 0 {
				return usageError{fmt.Errorf("--partial-max-age must be positive, e.g. 720h")}
			}
			o.PartialMaxAge = partialAge
			if o.Messenger.MaxChannelFileSize, err = parseSize(maxChanFile); err != nil || o.Messenger.MaxChannelFileSize <= 0 {
				return usageError{fmt.Errorf("--max-channel-file-size: %q is not a size such as 100MiB", maxChanFile)}
			}
			if err := tf.apply(&o); err != nil {
				return err
			}
			if err := mb.apply(&o); err != nil {
				return err
			}
			n, err := app.StartOrWait(ctx, o, func(_, loginURL, state string) {
				fmt.Fprintln(g.stdout, waitingMessage(state))
				fmt.Fprintf(g.stdout, "open: %s\n", loginURL)
			})
			if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
				// Ctrl-C while waiting for the profile: a normal stop.
				fmt.Fprintln(g.stdout, "shutting down")
				return nil
			}
			if err != nil {
				return err
			}
			if n.MailboxService != nil {
				fmt.Fprintln(g.stdout, "serving mailboxes")
			}
			fmt.Fprintf(g.stdout, "samizdat is up: %s (%s)\napi: %s\nopen: %s\n", n.Messenger.Name(), n.Messenger.AccountID(), n.APIAddr, n.LoginURL())
			for _, a := range n.P2P.Addrs() {
				fmt.Fprintf(g.stdout, "listening: %s\n", a)
			}
			for _, b := range n.P2P.Bridges() {
				fmt.Fprintf(g.stdout, "bridge: %s\n", b)
			}
			<-ctx.Done()
			fmt.Fprintln(g.stdout, "shutting down")
			return mb.close(n)
		},
	}
	c.Flags().StringArrayVar(&listen, "listen", nil, "multiaddr to listen on (repeatable; default: loopback TCP, QUIC and WebSocket)")
	c.Flags().StringArrayVar(&bootstrap, "bootstrap", nil, "peer to connect to at start, as /ip4/.../p2p/ID (repeatable)")
	c.Flags().StringVar(&apiAddr, "api", "127.0.0.1:0", "address of the local API (loopback only)")
	c.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	addServeMailboxFlag(c, &mb)
	addMeshFlags(c, &mf)
	c.Flags().StringArrayVar(&mailboxHosts, "mailbox-host", nil, "a relay or mailbox host keeping your mail while you are offline, as /ip4/.../p2p/ID (repeatable; listed in your invite)")
	c.Flags().BoolVar(&dht, "dht", true, "run the samizdat Kademlia DHT (reached through --bootstrap peers and contacts; never the public IPFS one)")
	c.Flags().StringArrayVar(&relays, "relay", nil, "a circuit relay to be reached through while not publicly reachable, as /ip4/.../p2p/ID (repeatable; without any, the mailbox hosts are used, and then see this device)")
	c.Flags().BoolVar(&noReceipts, "no-read-receipts", false, "do not tell contacts which of their messages you have read")
	c.Flags().StringVar(&maxFile, "max-file-size", "2GiB", "largest file sent or fetched, e.g. 2GiB, 100MiB or bytes")
	c.Flags().DurationVar(&partialAge, "partial-max-age", media.DefaultPartialMaxAge, "give up an incoming file still incomplete this long after it arrived (its chunks are deleted; saving it asks again)")
	c.Flags().StringVar(&maxChanFile, "max-channel-file-size", "100MiB", "largest file posted on or fetched from a channel")
	c.Flags().BoolVar(&behindNAT, "behind-nat", false, "assume this node cannot be dialled directly: book relay slots at once instead of waiting for AutoNAT")
	addTransportFlags(c, &tf)
	addHookFlags(c, &hf)
	return c
}

func inviteCmd(g *globals) *cobra.Command {
	var qr, short, asJSON bool
	c := &cobra.Command{
		Use:   "invite [--short] [--qr]",
		Short: "Print your invite link (and QR code) for a contact to add you",
		Long: `Print your invite link: the full link on standard output (it carries your
contact card, so it works with no lookup), and a short one on standard error
(at most 200 characters: it fits a text message and a small QR code; whoever
uses it fetches your card from this node or the DHT, so it works while either
is reachable). --short prints only the short link, on standard output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBackend(cmd.Context(), func(b backend, _ bool) error {
				inv, err := b.Invite(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, inv)
				}
				link, qrText := inv.Link, inv.Link
				if short {
					link, qrText = inv.Short, identity.ShortInviteQRText(inv.Short)
				}
				if qr {
					if err := identity.WriteQR(g.stdout, qrText); err != nil {
						return err
					}
				}
				fmt.Fprintln(g.stdout, link)
				if !short && inv.Short != "" {
					fmt.Fprintf(g.stderr, "short link (for a text message; needs this node or the DHT online): %s\n", inv.Short)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&qr, "qr", false, "also draw the link as a QR code")
	c.Flags().BoolVar(&short, "short", false, "print the short link (≤ 200 characters) instead of the full one")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func contactsCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "contacts [--json]",
		Short: "List your contacts (and add them: contacts add LINK)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBackend(cmd.Context(), func(b backend, _ bool) error {
				cs, err := b.Contacts(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, cs)
				}
				if len(cs) == 0 {
					fmt.Fprintln(g.stdout, "no contacts yet: add one with  samizdat contacts add LINK")
				}
				for _, c := range cs {
					fmt.Fprintf(g.stdout, "%-20s %s\n", safe(c.Name), c.AccountID)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var name string
	var addJSON bool
	add := &cobra.Command{
		Use:   "add LINK [--name NAME]",
		Short: "Add a contact from their samizdat: invite link (full or short)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend, _ bool) error {
				ct, err := b.AddContact(cmd.Context(), args[0], name)
				if err != nil {
					return err
				}
				if addJSON {
					return printJSON(g.stdout, ct)
				}
				fmt.Fprintf(g.stdout, "added %s (%s)\nsafety number: %s\n", ct.Name, ct.AccountID, ct.SafetyNumber)
				return nil
			})
		},
	}
	add.Flags().StringVar(&name, "name", "", "name to show for this contact (default: the name on their card)")
	add.Flags().BoolVar(&addJSON, "json", false, "print JSON")
	c.AddCommand(add)
	c.AddCommand(contactRenameCmd(g), contactDeleteCmd(g)) // contactedit.go
	return c
}

func sendCmd(g *globals) *cobra.Command {
	var asJSON bool
	var file string
	c := &cobra.Command{
		Use:   "send CONTACT TEXT... | send CONTACT --file PATH [TEXT...]",
		Short: "Send a message or a file (returns once it is queued durably)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				return g.sendFile(cmd, args, file, asJSON) // files.go
			}
			if len(args) < 2 {
				return usageError{errors.New("send needs a text, or --file PATH")}
			}
			text := strings.Join(args[1:], " ")
			return g.withBackend(cmd.Context(), func(b backend, online bool) error {
				m, err := b.Send(cmd.Context(), args[0], text)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, m)
				}
				fmt.Fprintln(g.stdout, m.ID)
				if !online {
					fmt.Fprintln(g.stderr, "queued: no node is running on this profile; it will be sent by the next `samizdat up`")
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the queued message as JSON")
	c.Flags().StringVar(&file, "file", "", "send this file (TEXT is its caption); needs the running node")
	return c
}

func retryCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "retry CONTACT MESSAGE-ID",
		Short: "Send a failed message again",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend, _ bool) error {
				m, err := b.Retry(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, m)
				}
				fmt.Fprintln(g.stdout, m.ID, m.State)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the message as JSON")
	return c
}

func messagesCmd(g *globals) *cobra.Command {
	var asJSON, follow bool
	c := &cobra.Command{
		Use:   "messages CONTACT [--json] [--follow]",
		Short: "Show a conversation with each message's state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.withBackend(ctx, func(b backend, online bool) error {
				conv, err := b.Messages(ctx, args[0], 0)
				if err != nil {
					return err
				}
				if !follow {
					if asJSON {
						return printJSON(g.stdout, conv)
					}
					for _, m := range conv.Messages {
						printMessage(g, conv.Contact.Name, m)
					}
					return nil
				}
				c, ok := b.(*apiclient.Client)
				if !online || !ok {
					return fmt.Errorf("--follow needs a running node (samizdat up)")
				}
				return g.follow(ctx, c, args[0], conv, asJSON)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (with --follow: one message object per line, on every change)")
	c.Flags().BoolVar(&follow, "follow", false, "keep printing new messages and state changes until interrupted")
	return c
}

// follow prints a conversation, then every new message and state change.
func (g *globals) follow(ctx context.Context, c *apiclient.Client, ref string, conv apiclient.Conversation, asJSON bool) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	seen := map[string]string{}
	show := func(m apiclient.Message) {
		if seen[m.ID] == m.State {
			return
		}
		seen[m.ID] = m.State
		if asJSON {
			b, _ := jsonLine(m)
			fmt.Fprintln(g.stdout, b)
		} else {
			printMessage(g, conv.Contact.Name, m)
		}
	}
	for _, m := range conv.Messages {
		show(m)
	}
	refresh := func() error {
		cv, err := c.Messages(ctx, ref, 0)
		if err != nil {
			return err
		}
		for _, m := range cv.Messages {
			show(m)
		}
		return nil
	}
	events := make(chan struct{}, 1)
	go func() {
		for ctx.Err() == nil {
			_ = c.Events(ctx, func(e apiclient.Event) {
				// "subscribed": anything since our listing is caught up now.
				if e.ContactID == conv.Contact.ID || e.Type == "subscribed" {
					select {
					case events <- struct{}{}:
					default:
					}
				}
			})
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	// Events wake us; a slow poll covers events lost on a reconnect.
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-events:
		case <-t.C:
		}
		if err := refresh(); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

func printMessage(g *globals, contact string, m apiclient.Message) {
	who := contact + " → me"
	if m.Outgoing {
		who = "me → " + contact
	}
	fmt.Fprintf(g.stdout, "%s  %-24s %s  [%s]\n", m.SentAt.Local().Format("2006-01-02 15:04:05"), safe(who), safe(m.Body), m.State)
}

// safe drops control characters (terminal escape sequences in particular)
// from text that other people wrote, before it reaches the terminal; line
// breaks and tabs in a message stay.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, s)
}

func mailboxesCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "mailboxes [--json]",
		Short: "Show which hosts keep your mail while you are offline, and their health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBackend(cmd.Context(), func(b backend, online bool) error {
				ms, err := b.Mailboxes(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, ms)
				}
				if len(ms) == 0 {
					fmt.Fprintln(g.stdout, "no mailbox hosts: contacts reach you only while you are online (see up --mailbox-host)")
					return nil
				}
				for _, m := range ms {
					health := "not checked yet"
					switch {
					case !online:
						health = "node not running"
					case m.LastError != "" && m.LastOK.IsZero():
						health = "unreachable: " + m.LastError
					case m.LastError != "":
						health = fmt.Sprintf("unreachable since %s (last reached %s): %s", m.LastCheck.Local().Format(time.TimeOnly), m.LastOK.Local().Format(time.TimeOnly), m.LastError)
					case !m.LastOK.IsZero():
						health = fmt.Sprintf("ok (checked %s, %d envelopes fetched)", m.LastOK.Local().Format(time.TimeOnly), m.Fetched)
					}
					fmt.Fprintf(g.stdout, "%s  %s\n", m.PeerID, health)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func statusCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show your account, the node's addresses, peers and queues",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBackend(cmd.Context(), func(b backend, _ bool) error {
				st, err := b.Status(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, st)
				}
				state := "not running (messages you send are queued)"
				if st.Running {
					state = "running"
				}
				fmt.Fprintf(g.stdout, "name:       %s\naccount id: %s\nnode:       %s\npeer id:    %s\n", st.Name, st.AccountID, state, st.PeerID)
				if r := st.Revoked; r != nil {
					fmt.Fprintf(g.stdout, "REVOKED:    %s\n", revokedLine(r)) // devices.go
				}
				for _, a := range st.Addrs {
					fmt.Fprintf(g.stdout, "listening:  %s\n", a)
				}
				fmt.Fprintf(g.stdout, "peers:      %d connected\ncontacts:   %d\n", len(st.ConnectedPeers), st.Contacts)
				fmt.Fprintf(g.stdout, "outbox:     %d queued, %d sent, %d delivered, %d failed\n",
					st.Outbox["queued"], st.Outbox["sent"], st.Outbox["delivered"], st.Outbox["failed"])
				if pk := st.Prekeys; pk != nil {
					fmt.Fprintf(g.stdout, "prekeys:    signed #%d (%d answering), one-time %d held, %d to hand out\n",
						pk.SignedPrekeyID, pk.Generations, pk.OneTime, pk.Unclaimed)
				}
				printNetStatus(g.stdout, st)
				printMeshStatus(g, st.Mesh)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
