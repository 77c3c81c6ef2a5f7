package app

import (
	"context"

	"github.com/samizdat-im/samizdat/internal/api"
	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// linkRank orders the ways of being reachable, best first.
var linkRank = map[string]int{apiclient.LinkDirect: 3, apiclient.LinkRelay: 2, apiclient.LinkMailbox: 1, apiclient.LinkOffline: 0}

// Connectivity says, per contact, how they are reachable right now:
// directly, through a relay, only through mailboxes (we have mailbox
// hosts, so mail waits for whoever is offline), or not at all; and what
// waits in the outbox.
func (n *Node) Connectivity(ctx context.Context) (apiclient.Connectivity, error) {
	out := apiclient.Connectivity{Overall: apiclient.LinkOffline, Contacts: []apiclient.ContactLink{}, Outbox: map[string]int{}}
	mbs := n.Messenger.Mailboxes()
	out.Mailboxes = api.ToMailboxes(mbs)
	out.Peers = len(n.P2P.ConnectedPeers())
	fallback := apiclient.LinkOffline
	if len(mbs) > 0 {
		fallback = apiclient.LinkMailbox
	}
	var cs []store.Contact
	var counts map[int64]map[string]int
	err := n.Store.View(ctx, func(tx *store.Tx) (err error) {
		if cs, err = tx.Contacts(); err != nil {
			return err
		}
		counts, err = tx.OutgoingStateCountsByContact()
		return err
	})
	if err != nil {
		return out, err
	}
	best := fallback
	for _, c := range cs {
		link := fallback
		switch n.P2P.ConnKind(c.PeerID) {
		case p2p.ConnDirect:
			link = apiclient.LinkDirect
		case p2p.ConnRelay:
			link = apiclient.LinkRelay
		}
		if linkRank[link] > linkRank[best] {
			best = link
		}
		cc := counts[c.ID]
		for k, v := range cc {
			out.Outbox[k] += v
		}
		out.Contacts = append(out.Contacts, apiclient.ContactLink{ContactID: c.ID, Name: c.Name, Link: link, Queued: cc[store.StateQueued], Failed: cc[store.StateFailed]})
	}
	if len(cs) == 0 && out.Peers > 0 {
		best = apiclient.LinkDirect
	}
	out.Overall = best
	return out, nil
}
