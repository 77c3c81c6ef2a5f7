package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Mailbox hosts from the DHT (DESIGN §6-7): relays announce the mailbox
// service as a provider record in our DHT; a user who configured no host
// takes the first WantMailboxHosts it finds, remembers them in the profile
// and lists them in its card.

const (
	// MailboxServiceName is the DHT service name of mailbox hosts.
	MailboxServiceName = "mailbox/1"
	// WantMailboxHosts is how many mailbox hosts a user keeps.
	WantMailboxHosts = 3

	provideEvery      = 12 * time.Hour // provider records live 48 h
	firstRetry        = 2 * time.Second
	maxDiscoveryRetry = 10 * time.Minute
)

// retryLoop runs try until it reports done or ctx ends, waiting
// firstRetry, then twice as long each time (at most maxDiscoveryRetry),
// between failures, and every after successes.
func retryLoop(ctx context.Context, every time.Duration, try func() (ok, done bool)) {
	wait := firstRetry
	for {
		ok, done := try()
		if done {
			return
		}
		next := wait
		if ok {
			next, wait = every, firstRetry
		} else {
			wait = min(wait*2, maxDiscoveryRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// announceMailbox keeps the relay's provider record for MailboxServiceName in
// the DHT.
func announceMailbox(ctx context.Context, n *p2p.Node, log *slog.Logger) {
	retryLoop(ctx, provideEvery, func() (bool, bool) {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := n.Provide(pctx, MailboxServiceName); err != nil {
			log.Debug("mailboxAnnounceFailed", "err", err)
			return false, ctx.Err() != nil
		}
		log.Info("mailboxAnnounced")
		return true, false
	})
}

// discoverMailboxHosts looks for mailbox hosts in the DHT until it has
// WantMailboxHosts, handing each better set to the messenger and saving
// it in the profile (the next start uses it without a lookup).
func (n *Node) discoverMailboxHosts(ctx context.Context) {
	have := 0
	retryLoop(ctx, maxDiscoveryRetry, func() (bool, bool) {
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		found, err := n.P2P.FindProviders(fctx, MailboxServiceName, WantMailboxHosts)
		if err != nil {
			n.log.Debug("mailboxDiscoveryFailed", "err", err)
			return false, ctx.Err() != nil
		}
		if len(found) <= have {
			return false, false
		}
		hosts := make([]messenger.MailboxHost, len(found))
		for i, p := range found {
			hosts[i] = messenger.MailboxHost{PeerID: p.PeerID, Addrs: p.Addrs}
		}
		b, _ := json.Marshal(hosts)
		if err := n.Store.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobMailboxHosts, b) }); err != nil {
			n.log.Warn("saveMailboxHostsFailed", "err", err)
			return false, ctx.Err() != nil
		}
		if err := n.Messenger.SetMailboxHosts(ctx, hosts); err != nil {
			n.log.Warn("setMailboxHostsFailed", "err", err)
			return false, ctx.Err() != nil
		}
		if err := n.P2P.SetStaticRelays(n.staticRelays(hosts)); err != nil {
			n.log.Warn("setStaticRelaysFailed", "err", err)
		}
		have = len(hosts)
		n.log.Info("mailboxHostsFound", "hosts", have)
		return true, have >= WantMailboxHosts
	})
}
