package messenger

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Choosing mailbox hosts (issue 14): not the first to announce themselves
// in the DHT — anyone can volunteer to be that host — but those our
// contacts' cards and our configured relays vouch for, measured. Every
// stream to a host (deposits, fetches, probes) records whether it opened
// and how long it took; a host found only in the DHT is taken after a
// successful probe, and all are ranked vouched first, then by success
// rate and latency.

// maxHealthHosts bounds the hosts whose health is remembered.
const maxHealthHosts = 1024

// maxProbes bounds the candidates ChooseMailboxHosts probes.
const maxProbes = 12

// hostHealth is what we measured of each mailbox host, by peer id.
type hostHealth struct {
	mu sync.Mutex
	by map[string]*HostHealth
}

// HostHealth is the measured health of one mailbox host.
type HostHealth struct {
	OK      int           `json:"ok"`      // streams that opened
	Failed  int           `json:"failed"`  // streams that did not
	Latency time.Duration `json:"latency"` // moving average of the successful opens
	Last    time.Time     `json:"last"`
}

func (h *hostHealth) note(peer string, d time.Duration, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by == nil || len(h.by) >= maxHealthHosts {
		h.by = map[string]*HostHealth{}
	}
	s := h.by[peer]
	if s == nil {
		s = &HostHealth{}
		h.by[peer] = s
	}
	s.Last = time.Now()
	if err != nil {
		s.Failed++
		return
	}
	if s.OK == 0 {
		s.Latency = d
	} else {
		s.Latency = (3*s.Latency + d) / 4
	}
	s.OK++
}

func (h *hostHealth) get(peer string) HostHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.by[peer]; s != nil {
		return *s
	}
	return HostHealth{}
}

// HostHealth returns what was measured of a mailbox host (zero: nothing).
func (m *Messenger) HostHealth(peerID string) HostHealth { return m.health.get(peerID) }

// VouchedHosts returns the mailbox hosts our contacts' cards list, the
// host most contacts name first.
func (m *Messenger) VouchedHosts(ctx context.Context) ([]MailboxHost, error) {
	count := map[string]int{}
	byID := map[string]MailboxHost{}
	err := m.st.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		if err != nil {
			return err
		}
		for _, c := range cs {
			card, err := identity.ParseSignedCard(c.Card)
			if err != nil {
				continue
			}
			for _, h := range card.Mailboxes {
				count[h.PeerID]++
				if _, ok := byID[h.PeerID]; !ok {
					byID[h.PeerID] = MailboxHost{PeerID: h.PeerID, Addrs: slices.Clone(h.Addrs)}
				}
			}
		}
		return nil
	})
	out := make([]MailboxHost, 0, len(byID))
	for _, h := range byID {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b MailboxHost) int {
		if d := count[b.PeerID] - count[a.PeerID]; d != 0 {
			return d
		}
		return strings.Compare(a.PeerID, b.PeerID)
	})
	return out, err
}

// ProbeHost checks that a mailbox host answers (a fetch challenge over a
// throwaway identity) and records the result in its health.
func (m *Messenger) ProbeHost(ctx context.Context, h MailboxHost) error {
	if m.tr == nil {
		return ErrNotReachable
	}
	pctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
	defer cancel()
	err := mailbox.Probe(pctx, m.opener(h), h.PeerID)
	if err != nil {
		// The stream may have opened (and been counted) but the host did
		// not answer: that is a failure too.
		m.health.note(h.PeerID, 0, err)
	}
	return err
}

// ChooseMailboxHosts picks at most want hosts: each candidate is probed
// (vouched ones — named by our contacts' cards or our configured relays —
// and found ones, e.g. from the DHT); those that answer are ranked
// vouched first, then by measured success rate, then latency. A host only
// found, never vouched for, is taken only after a successful probe.
func (m *Messenger) ChooseMailboxHosts(ctx context.Context, vouched, found []MailboxHost, want int) []MailboxHost {
	type cand struct {
		h       MailboxHost
		vouched bool
	}
	var cands []cand
	seen := map[string]bool{}
	for i, list := range [][]MailboxHost{vouched, found} {
		for _, h := range list {
			if h.PeerID == "" || seen[h.PeerID] || (m.tr != nil && h.PeerID == m.tr.PeerID()) {
				continue
			}
			seen[h.PeerID] = true
			cands = append(cands, cand{h: h, vouched: i == 0})
		}
	}
	// Probing costs a throwaway host and up to a stream timeout each: the
	// first maxProbes candidates (vouched ones first) are enough.
	cands = cands[:min(len(cands), max(want*4, maxProbes))]
	var ok []cand
	for _, c := range cands {
		if ctx.Err() != nil {
			break
		}
		if err := m.ProbeHost(ctx, c.h); err == nil {
			ok = append(ok, c)
		}
	}
	rate := func(h HostHealth) float64 { return float64(h.OK) / float64(h.OK+h.Failed+1) }
	slices.SortStableFunc(ok, func(a, b cand) int {
		if a.vouched != b.vouched {
			if a.vouched {
				return -1
			}
			return 1
		}
		ha, hb := m.health.get(a.h.PeerID), m.health.get(b.h.PeerID)
		if ra, rb := rate(ha), rate(hb); ra != rb {
			if ra > rb {
				return -1
			}
			return 1
		}
		return cmp.Compare(ha.Latency, hb.Latency)
	})
	out := make([]MailboxHost, 0, min(want, len(ok)))
	for _, c := range ok[:min(want, len(ok))] {
		out = append(out, c.h)
	}
	return out
}
