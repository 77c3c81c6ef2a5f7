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

// Groups and channels live on the network (gossipsub topics, sender keys
// over 1:1 sessions): their commands need the running node.

// withNode runs f against the profile's running node.
func (g *globals) withNode(ctx context.Context, f func(c *apiclient.Client) error) error {
	c, err := apiclient.Load(ctx, filepath.Join(g.profile, app.APIFile))
	if errors.Is(err, apiclient.ErrNoDaemon) {
		return fmt.Errorf("%w: groups and channels need it (start it with samizdat up)", err)
	}
	if err != nil {
		return err
	}
	return f(c)
}

// nodeCmd is a command that calls the node and prints its answer (JSON
// with --json, else text).
func (g *globals) nodeCmd(use, short string, args cobra.PositionalArgs, call func(ctx context.Context, c *apiclient.Client, args []string) (any, error), text func(v any)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.withNode(cmd.Context(), func(c *apiclient.Client) error {
				v, err := call(cmd.Context(), c, a)
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

func groupCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "group", Short: "Private groups: create, invite, join, leave, remove, send, messages"}
	printGroup := func(v any) { g.printGroup(v.(apiclient.Group)) }
	list := g.nodeCmd("list [--json]", "List your groups", cobra.NoArgs,
		func(ctx context.Context, c *apiclient.Client, _ []string) (any, error) { return c.Groups(ctx) },
		func(v any) {
			for _, gr := range v.([]apiclient.Group) {
				state := ""
				if gr.Gone {
					state = "  (left)"
				}
				fmt.Fprintf(g.stdout, "%s  %-24s %d members%s\n", gr.ID[:12], safe(gr.Name), len(gr.Members), state)
			}
		})
	create := g.nodeCmd("create NAME...", "Create a group with you as its admin", cobra.MinimumNArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.CreateGroup(ctx, strings.Join(a, " "))
		}, printGroup)
	show := g.nodeCmd("show GROUP [--json]", "Show a group and its members", cobra.ExactArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) { return c.Group(ctx, a[0]) }, printGroup)
	invite := g.nodeCmd("invite GROUP CONTACT...", "Add contacts to a group (admins), all at once; they join on receipt", cobra.MinimumNArgs(2),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.GroupInvite(ctx, a[0], a[1:]...)
		}, printGroup)
	invite.Aliases = []string{"add"}
	join := g.nodeCmd("join GROUP", "Take part in a group you were invited to and fetch its recent messages", cobra.ExactArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) { return c.GroupJoin(ctx, a[0]) }, printGroup)
	leave := g.nodeCmd("leave GROUP", "Leave a group", cobra.ExactArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.GroupLeave(ctx, a[0])
		}, printGroup)
	remove := g.nodeCmd("remove GROUP MEMBER", "Remove a member (contact name or account id; admins): everyone gets new keys", cobra.ExactArgs(2),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.GroupRemove(ctx, a[0], a[1])
		}, printGroup)
	rename := g.nodeCmd("rename GROUP NAME...", "Rename a group (admins)", cobra.MinimumNArgs(2),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.GroupRename(ctx, a[0], strings.Join(a[1:], " "))
		}, printGroup)
	var file string
	send := g.nodeCmd("send GROUP TEXT... | send GROUP --file PATH [TEXT...]", "Send a message or a file to a group (encrypted and uploaded once, whatever its size)", cobra.MinimumNArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			if file != "" {
				abs, err := filepath.Abs(file) // the node runs elsewhere
				if err != nil {
					return nil, err
				}
				return c.GroupSendFile(ctx, a[0], abs, strings.Join(a[1:], " "))
			}
			if len(a) < 2 {
				return nil, usageError{errors.New("group send needs a text, or --file PATH")}
			}
			return c.GroupSend(ctx, a[0], strings.Join(a[1:], " "))
		}, func(v any) { fmt.Fprintln(g.stdout, v.(apiclient.GroupMessage).ID) })
	send.Flags().StringVar(&file, "file", "", "send this file (TEXT is its caption); the members fetch it from each other")
	messages := g.nodeCmd("messages GROUP [--json]", "Show a group's messages", cobra.ExactArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.GroupMessages(ctx, a[0], 0)
		},
		func(v any) {
			for _, m := range v.(apiclient.GroupConversation).Messages {
				text := safe(m.Text)
				if m.File != nil {
					text = strings.TrimSpace("[file: " + safe(m.File.Name) + "] " + text)
				}
				fmt.Fprintf(g.stdout, "%s  %-16s %s\n", m.SentAt.Local().Format("2006-01-02 15:04:05"), safe(m.SenderName), text)
			}
		})
	c.AddCommand(list, create, show, invite, join, leave, remove, rename, send, messages)
	return c
}

func (g *globals) printGroup(gr apiclient.Group) {
	fmt.Fprintf(g.stdout, "%s  %s (epoch %d)\n", gr.ID, safe(gr.Name), gr.Epoch)
	if gr.Gone {
		fmt.Fprintln(g.stdout, "  you are no longer a member")
	}
	for _, m := range gr.Members {
		role := ""
		if m.Admin {
			role = "  admin"
		}
		fmt.Fprintf(g.stdout, "  %-20s %s%s\n", safe(m.Name), m.AccountID[:min(12, len(m.AccountID))], role)
	}
}

func channelCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "channel", Short: "Broadcast channels: create, invite, follow, post, posts"}
	printChannel := func(v any) {
		ch := v.(apiclient.Channel)
		kind := "public"
		if ch.Private {
			kind = "private"
		}
		role := "following"
		if ch.Owned {
			role = "owner"
		}
		fmt.Fprintf(g.stdout, "%s  %-24s %s, %s, %d posts\n", ch.ID[:12], safe(ch.Name), kind, role, ch.Posts)
	}
	list := g.nodeCmd("list [--json]", "List the channels you own or follow", cobra.NoArgs,
		func(ctx context.Context, c *apiclient.Client, _ []string) (any, error) { return c.Channels(ctx) },
		func(v any) {
			for _, ch := range v.([]apiclient.Channel) {
				printChannel(ch)
			}
		})
	var private bool
	create := g.nodeCmd("create NAME... [--private]", "Create a channel (private: readable only with its invite)", cobra.MinimumNArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.CreateChannel(ctx, strings.Join(a, " "), private)
		}, printChannel)
	create.Flags().BoolVar(&private, "private", false, "encrypt posts with a key carried in the invite")
	invite := g.nodeCmd("invite CHANNEL", "Print a channel's invite link (anyone holding it can follow)", cobra.ExactArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.ChannelInvite(ctx, a[0])
		},
		func(v any) { fmt.Fprintln(g.stdout, v.(apiclient.ChannelInvite).Link) })
	follow := g.nodeCmd("follow LINK", "Follow a channel from its invite link", cobra.ExactArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.FollowChannel(ctx, a[0])
		}, printChannel)
	var alert bool
	var postFile string
	post := g.nodeCmd("post CHANNEL TEXT... [--alert] | post CHANNEL --file PATH [TEXT...]", "Sign and publish a post (or a file) on a channel you own", cobra.MinimumNArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			if postFile != "" {
				abs, err := filepath.Abs(postFile) // the node runs elsewhere
				if err != nil {
					return nil, err
				}
				return c.PostFile(ctx, a[0], abs, strings.Join(a[1:], " "), alert)
			}
			if len(a) < 2 {
				return nil, usageError{errors.New("channel post needs a text, or --file PATH")}
			}
			return c.Post(ctx, a[0], strings.Join(a[1:], " "), alert)
		}, func(v any) { fmt.Fprintln(g.stdout, v.(apiclient.ChannelPost).Seq) })
	post.Flags().BoolVar(&alert, "alert", false, "alert priority: followers' clients show it at once")
	post.Flags().StringVar(&postFile, "file", "", "post this file (TEXT is its caption); the subscribers fetch it from each other")
	posts := g.nodeCmd("posts CHANNEL [--json]", "Show a channel's posts", cobra.ExactArgs(1),
		func(ctx context.Context, c *apiclient.Client, a []string) (any, error) {
			return c.ChannelPosts(ctx, a[0], 0)
		},
		func(v any) {
			for _, p := range v.(apiclient.ChannelPosts).Posts {
				mark := "  "
				if p.Alert {
					mark = "! "
				}
				text := safe(p.Text)
				if p.File != nil {
					text = strings.TrimSpace("[file: " + safe(p.File.Name) + ", " + p.Hash[:12] + "] " + text)
				}
				fmt.Fprintf(g.stdout, "%s%4d  %s  %s\n", mark, p.Seq, p.At.Local().Format("2006-01-02 15:04:05"), text)
			}
		})
	c.AddCommand(list, create, invite, follow, post, posts)
	return c
}
