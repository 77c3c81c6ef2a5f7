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
// takes the best WantMailboxHosts of those it finds and those its contacts
// and relays vouch for (measured, see discoverMailboxHosts), remembers them
// in the profile and lists them in its card.

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

// discoverMailboxHosts looks for mailbox hosts until it has
// WantMailboxHosts, handing each better set to the messenger and saving
// it in the profile (the next start uses it without a lookup). Not the
// first to announce themselves in the DHT (anyone can): the candidates are
// the hosts our contacts' cards list and our configured relays (vouched
// for), then those the DHT names; each is probed over a throwaway
// identity and the messenger ranks them vouched first, then by measured
// success and latency (messenger.ChooseMailboxHosts, issue 14).
func (n *Node) discoverMailboxHosts(ctx context.Context) {
	have := 0
	retryLoop(ctx, maxDiscoveryRetry, func() (bool, bool) {
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		vouched, err := n.Messenger.VouchedHosts(fctx)
		if err != nil {
			n.log.Debug("vouchedHostsFailed", "err", err)
		}
		if relays, err := ParseMailboxHosts(n.relays); err == nil {
			vouched = append(vouched, relays...)
		}
		var dhtFound []messenger.MailboxHost
		found, err := n.P2P.FindProviders(fctx, MailboxServiceName, 3*WantMailboxHosts)
		if err != nil {
			n.log.Debug("mailboxDiscoveryFailed", "err", err)
		}
		for _, p := range found {
			dhtFound = append(dhtFound, messenger.MailboxHost{PeerID: p.PeerID, Addrs: p.Addrs})
		}
		hosts := n.Messenger.ChooseMailboxHosts(fctx, vouched, dhtFound, WantMailboxHosts)
		if len(hosts) <= have {
			return false, ctx.Err() != nil
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
		n.log.Info("mailboxHostsFound", "hosts", have, "found", len(found), "vouched", len(vouched))
		return true, have >= WantMailboxHosts
	})
}
