package messenger

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Files for offline contacts (issue 16, media/hosted.go): a file sent to a
// contact that is not connected is deposited, as padded sealed blobs, at
// the contact's mailbox hosts (within their quotas, over a throwaway
// transport identity like every mailbox deposit), so the contact gets it
// while we are offline; and our own hosts are a source of the files sent
// to us. A file the hosts refuse (over quota) waits here, and the transfer
// says so (Transfer.HostState).

// overQuotaRetry is how long a file the hosts refused for their quotas
// waits before it is offered again (files that failed for another reason,
// an unreachable host, are tried again every FetchInterval).
const overQuotaRetry = 10 * time.Minute

// mediaHostsState is the deposit loop's state.
type mediaHostsState struct {
	kick chan struct{}
	mu   sync.Mutex
	next map[string]time.Time // message id → not before
}

// startMediaHosts plugs our hosts into the media service and starts the
// deposit loop.
func (m *Messenger) startMediaHosts(ctx context.Context) {
	svc := m.cfg.Media
	if svc == nil || m.tr == nil {
		return
	}
	m.mediaHosts = &mediaHostsState{kick: make(chan struct{}, 1), next: map[string]time.Time{}}
	svc.SetHostBlobs(ownHostBlobs{m})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.depositLoop(ctx)
	}()
}

// kickDeposits makes the deposit loop look at once (a file was sent).
func (m *Messenger) kickDeposits() {
	if m.mediaHosts == nil {
		return
	}
	select {
	case m.mediaHosts.kick <- struct{}{}:
	default:
	}
}

// depositLoop deposits the files sent to unreachable contacts, at start,
// when a file is sent and every FetchInterval (files over quota are tried
// again: the hosts may have room since).
func (m *Messenger) depositLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.FetchInterval)
	defer t.Stop()
	for {
		m.depositFiles(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.mediaHosts.kick:
		}
	}
}

func (m *Messenger) depositFiles(ctx context.Context) {
	svc := m.cfg.Media
	outs, err := svc.ToDeposit(ctx)
	if err != nil {
		return
	}
	connected := m.tr.ConnectedPeers()
	mh := m.mediaHosts
	now := time.Now()
	for _, o := range outs {
		if ctx.Err() != nil {
			return
		}
		mh.mu.Lock()
		wait := now.Before(mh.next[o.MessageID])
		mh.mu.Unlock()
		if wait {
			continue
		}
		var c *store.Contact
		var msg *store.Message
		err := m.st.View(ctx, func(tx *store.Tx) (err error) {
			if c, err = tx.Contact(o.ContactID); err != nil {
				return err
			}
			msg, err = tx.Message(o.ContactID, true, o.MessageID)
			return err
		})
		if err != nil {
			continue
		}
		// A contact that has the message fetches from us (and is not
		// looked at again); one that is connected will have it soon.
		if msg.State == store.StateDelivered || msg.State == store.StateRead {
			_ = svc.SkipDeposit(ctx, o.MessageID)
			continue
		}
		if slices.Contains(connected, c.PeerID) {
			continue
		}
		// The primary device's own hosts, where its message goes too (the
		// contact's card may be another device's, cardpush.go).
		card, err := m.primaryCard(ctx, c)
		if err != nil || len(card.Mailboxes) == 0 {
			continue
		}
		state, why := m.depositFile(ctx, card.Mailboxes, o.Manifest)
		// The file is of use at the hosts only with the message that
		// carries its manifest: while that is not there (the outbox may
		// still be busy looking for the contact), it goes now, and the
		// transfer does not say "deposited" before it is.
		if state == media.HostDeposited && msg.State == store.StateQueued && !m.depositMessage(ctx, c, o.MessageID) {
			state, why = media.HostDepositing, "the file is at the contact's mailbox hosts, its message not yet"
		}
		if state == media.HostOverQuota {
			mh.mu.Lock()
			mh.next[o.MessageID] = time.Now().Add(overQuotaRetry)
			mh.mu.Unlock()
		}
		if state != o.HostState || why != "" {
			if err := svc.SetHostState(ctx, o.MessageID, state, why); err != nil {
				m.log.Debug("hostStateFailed", "err", err)
			}
		}
		m.log.Info("fileDeposit", "msg", shortID(o.MessageID), "state", state)
	}
}

func shortID(id string) string { return id[:min(8, len(id))] }

// depositFile deposits the blobs of file man at the hosts (the first
// maxDepositHosts): HostDeposited once one host holds all of them, else
// HostOverQuota if a host refused for quota, else HostDepositing (tried
// again later), with the reason.
func (m *Messenger) depositFile(ctx context.Context, hosts []identity.MailboxHost, man *media.Manifest) (state, why string) {
	ids, blob, err := m.cfg.Media.Deposit(man)
	if err != nil {
		return media.HostDepositing, err.Error()
	}
	var errs []error
	overQuota := false
	done := false
	for i, h := range hosts {
		if i == maxDepositHosts {
			break
		}
		var mb mailbox.ID
		copy(mb[:], h.ID)
		err := m.depositAt(ctx, MailboxHost{PeerID: h.PeerID, Addrs: h.Addrs}, mb, ids, blob)
		if err == nil {
			done = true
			continue
		}
		if errors.Is(err, mailbox.ErrQuotaFull) {
			overQuota = true
		}
		errs = append(errs, fmt.Errorf("host %s: %w", shortPeer(h.PeerID), err))
	}
	switch {
	case done:
		return media.HostDeposited, ""
	case overQuota:
		return media.HostOverQuota, "the file waits here: " + errors.Join(errs...).Error()
	case len(errs) > 0:
		return media.HostDepositing, errors.Join(errs...).Error()
	}
	return media.HostDepositing, "no mailbox host"
}

// depositAt puts at one host what it does not hold yet of ids.
func (m *Messenger) depositAt(ctx context.Context, h MailboxHost, mb mailbox.ID, ids []media.Hash, blob func(int) ([]byte, error)) error {
	c, err := mailbox.DialBlobs(ctx, m.opener(h), h.PeerID)
	if err != nil {
		return err
	}
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	var missing []int
	for start := 0; start < len(ids); start += mailbox.MaxBlobBatch {
		batch := toMailboxHashes(ids[start:min(len(ids), start+mailbox.MaxBlobBatch)])
		has, err := c.Have(ctx, mb, batch)
		if err != nil {
			return err
		}
		for i, ok := range has {
			if !ok {
				missing = append(missing, start+i)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// Nothing goes out for a file that cannot fit.
	if err := c.Room(ctx, mb, len(missing)); err != nil {
		return err
	}
	for start := 0; start < len(missing); start += blobsPerStream {
		part := missing[start:min(len(missing), start+blobsPerStream)]
		batch := make([]mailbox.Hash, len(part))
		for i, k := range part {
			batch[i] = mailbox.Hash(ids[k])
		}
		if start > 0 { // a fresh stream (and throwaway identity) per part
			c.Close()
			if c, err = mailbox.DialBlobs(ctx, m.opener(h), h.PeerID); err != nil {
				return err
			}
		}
		n, err := c.Put(ctx, mb, batch, func(i int) ([]byte, error) { return blob(part[i]) })
		if err != nil {
			return err
		}
		if n != len(batch) {
			return fmt.Errorf("host took %d of %d blobs", n, len(batch))
		}
	}
	return nil
}

// blobsPerStream bounds the blobs one stream carries (6.3 MB): a host
// reached through a circuit relay (relay --via) gets a circuit limited to
// 8 MiB and 2 minutes each way, so a file travels over several. A
// variable for tests.
var blobsPerStream = 24

func toMailboxHashes(hs []media.Hash) []mailbox.Hash {
	out := make([]mailbox.Hash, len(hs))
	for i, h := range hs {
		out[i] = mailbox.Hash(h)
	}
	return out
}

// ownHostBlobs is media.HostBlobs over our own mailbox hosts, under each
// of our mailbox ids (a sender may know an older one).
type ownHostBlobs struct{ m *Messenger }

var _ media.HostBlobs = ownHostBlobs{}

func (o ownHostBlobs) each(ctx context.Context, f func(c *mailbox.BlobConn, mb mailbox.ID, redial func() (*mailbox.BlobConn, error)) error) error {
	var errs []error
	for _, h := range o.m.mailboxHosts() {
		// A stream per mailbox id, each over its own throwaway identity
		// (as for fetching mail): the host cannot tell two ids are ours.
		for _, key := range o.m.blobKeys() {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c, err := mailbox.DialBlobs(ctx, o.m.opener(h), h.PeerID)
			if err != nil {
				errs = append(errs, err)
				break
			}
			redial := func() (*mailbox.BlobConn, error) {
				c.Close()
				var err error
				c, err = mailbox.DialBlobs(ctx, o.m.opener(h), h.PeerID)
				return c, err
			}
			err = f(c, mailbox.KeyID(key), redial)
			if c != nil {
				c.Close()
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// blobKeys are our mailbox keys under which hosts may still hold blobs:
// the current one first, then those superseded less than
// mailbox.DefaultBlobTTL ago (a sender deposits under the id of the card
// it has; blobs older than that are gone).
func (m *Messenger) blobKeys() []ed25519.PrivateKey {
	m.mbMu.Lock()
	defer m.mbMu.Unlock()
	now := m.now()
	var out []ed25519.PrivateKey
	for i := len(m.mbKeys) - 1; i >= 0; i-- {
		k := m.mbKeys[i]
		if k.until.IsZero() || now.Sub(k.until) < mailbox.DefaultBlobTTL {
			out = append(out, k.key)
		}
	}
	return out
}

// GetBlobs gets what our hosts hold of ids.
func (o ownHostBlobs) GetBlobs(ctx context.Context, ids []media.Hash, got func(i int, blob []byte) error) error {
	have := make([]bool, len(ids))
	left := len(ids)
	return o.each(ctx, func(c *mailbox.BlobConn, mb mailbox.ID, redial func() (*mailbox.BlobConn, error)) error {
		sent := 0 // blobs on this stream
		for start := 0; start < len(ids) && left > 0; start += mailbox.MaxBlobBatch {
			batch := toMailboxHashes(ids[start:min(len(ids), start+mailbox.MaxBlobBatch)])
			held, err := c.Have(ctx, mb, batch)
			if err != nil {
				return err
			}
			var want []mailbox.Hash
			var at []int
			for i, ok := range held {
				if ok && !have[start+i] {
					want, at = append(want, batch[i]), append(at, start+i)
				}
			}
			// A fresh stream every blobsPerStream (see there).
			for k := 0; k < len(want); k += blobsPerStream {
				if sent > 0 {
					if c, err = redial(); err != nil {
						return err
					}
					sent = 0
				}
				part, pat := want[k:min(len(want), k+blobsPerStream)], at[k:min(len(at), k+blobsPerStream)]
				err = c.GetMany(ctx, mb, part, func(i int, b []byte) error {
					if got(pat[i], b) == nil { // a blob that does not open may be good elsewhere
						have[pat[i]] = true
						left--
					}
					return nil
				})
				if err != nil {
					return err
				}
				sent += len(part)
			}
		}
		return nil
	})
}

// DeleteBlobs deletes ids at our hosts.
func (o ownHostBlobs) DeleteBlobs(ctx context.Context, ids []media.Hash) {
	_ = o.each(ctx, func(c *mailbox.BlobConn, mb mailbox.ID, _ func() (*mailbox.BlobConn, error)) error {
		for start := 0; start < len(ids); start += mailbox.MaxBlobBatch {
			if _, err := c.Delete(ctx, mb, toMailboxHashes(ids[start:min(len(ids), start+mailbox.MaxBlobBatch)])); err != nil {
				return err
			}
		}
		return nil
	})
}

// depositMessage leaves the queued message msgID (with the messages
// queued before it) with the contact's mailbox hosts, as the outbox does
// when the contact is unreachable, and says whether it is there now (or
// was delivered meanwhile).
func (m *Messenger) depositMessage(ctx context.Context, c *store.Contact, msgID string) bool {
	var queue []store.OutboxItem
	err := m.st.View(ctx, func(tx *store.Tx) error {
		items, err := tx.Outbox(c.ID)
		if err != nil {
			return err
		}
		for i, it := range items {
			if it.MessageID == msgID {
				queue = items[:i+1]
				break
			}
		}
		return nil
	})
	if err != nil {
		return false
	}
	if len(queue) > 0 {
		m.depositToMailboxes(ctx, c, queue)
	}
	var msg *store.Message
	err = m.st.View(ctx, func(tx *store.Tx) (err error) {
		msg, err = tx.Message(c.ID, true, msgID)
		return err
	})
	return err == nil && msg.State != store.StateQueued
}
