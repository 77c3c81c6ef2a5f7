package messenger

import (
	"context"
	"encoding/hex"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Where the files we sent to groups stand (issue 16): the members fetch
// them from each other, and the ones offline get them when they come
// back, from us or from the members who have them. Every FetchInterval
// (and soon after a file is sent) the media service asks the members who
// do not hold a file yet whether they do now (media.CheckHolders, with
// the have queries of the blob protocol), so the sender's transfer says
// how many members have it and how many it waits for.

// groupHolderDelay is how long after a group file is sent its members are
// first checked (they are fetching it then).
const groupHolderDelay = 2 * time.Second

// groupHolders is the check loop's state.
type groupHolders struct {
	kick chan struct{}
	mu   sync.Mutex
	full map[string]int // message id → member count when all held it
}

// startGroupHolders starts the loop that checks who holds the files we
// sent to groups.
func (m *Messenger) startGroupHolders(ctx context.Context) {
	if m.cfg.Media == nil || m.tr == nil {
		return
	}
	gh := &groupHolders{kick: make(chan struct{}, 1), full: map[string]int{}}
	m.groupHolders = gh
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		// The first check soon after the start (what was known before
		// a restart shows again), then every FetchInterval.
		soon := min(groupHolderDelay, m.cfg.FetchInterval)
		t := time.NewTimer(soon)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				t.Reset(m.cfg.FetchInterval)
			case <-gh.kick:
				select {
				case <-ctx.Done():
					return
				case <-time.After(soon):
				}
			}
			m.checkGroupHolders(ctx)
		}
	}()
}

// kickGroupHolders makes the loop check soon (a group file was sent).
func (m *Messenger) kickGroupHolders() {
	if m.groupHolders == nil {
		return
	}
	select {
	case m.groupHolders.kick <- struct{}{}:
	default:
	}
}

func (m *Messenger) checkGroupHolders(ctx context.Context) {
	svc := m.cfg.Media
	files, err := svc.SentToGroups(ctx)
	if err != nil {
		return
	}
	gh := m.groupHolders
	for _, f := range files {
		if ctx.Err() != nil {
			return
		}
		members, ok := m.groupMemberDevices(ctx, f.Group)
		if !ok {
			continue // a channel's file, or a group we left
		}
		gh.mu.Lock()
		n, full := gh.full[f.MessageID]
		gh.mu.Unlock()
		if full && n == len(members) {
			continue
		}
		h, err := svc.CheckHolders(ctx, f.MessageID, members, m.cfg.FetchInterval)
		if err != nil {
			continue
		}
		if h.Done == h.Members {
			gh.mu.Lock()
			gh.full[f.MessageID] = h.Members
			gh.mu.Unlock()
		}
	}
}

// groupMemberDevices maps the other members of group (hex id) to their
// devices' peer ids, from their cards; false for no group of ours.
func (m *Messenger) groupMemberDevices(ctx context.Context, group string) (map[string][]string, bool) {
	gid, err := hex.DecodeString(group)
	if err != nil {
		return nil, false
	}
	gi, err := m.Group(ctx, group)
	if err != nil || gi.Gone || gi.ID != group {
		return nil, false
	}
	st, err := m.cachedState(ctx, gid)
	if err != nil {
		return nil, false
	}
	self := m.tr.PeerID()
	out := map[string][]string{}
	err = m.st.View(ctx, func(tx *store.Tx) error {
		for acct, mb := range st.members {
			if acct == m.acct {
				continue
			}
			var peers []string
			if card, err := identity.ParseHistoricCard(memberCard(tx, acct, mb)); err == nil {
				for _, d := range card.Devices {
					if d.PeerID == self {
						continue
					}
					peers = append(peers, d.PeerID)
					if len(d.Addrs) > 0 {
						m.tr.AddAddrs(d.PeerID, d.Addrs)
					}
				}
			}
			out[acct] = peers // a member without a card counts, and is offline
		}
		return nil
	})
	return out, err == nil
}
