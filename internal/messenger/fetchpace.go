package messenger

import "time"

// How often the mailboxes are checked (issue 18: an idle node's data).
// A contact that can reach us delivers straight to us (push); the
// mailboxes hold what was sent while we could not be reached, and each
// check costs a connection per host and mailbox id (a throwaway identity,
// a Noise handshake, identify: some 5 KB). So a check that finds nothing
// doubles the wait before the next one, from FetchInterval up to
// fetchIdleFactor × FetchInterval (30 s → 5 min by default); mail found
// brings it back to FetchInterval, and so does every kick: a mailbox host
// (re)connecting — the network came back — or new mailbox hosts.
const fetchIdleFactor = 10

// fetchPace is the fetch loop's wait between two checks.
type fetchPace struct {
	min, max, cur time.Duration
}

func newFetchPace(interval time.Duration) *fetchPace {
	return &fetchPace{min: interval, max: fetchIdleFactor * interval, cur: interval}
}

// next returns the wait after a check that took fetched items.
func (p *fetchPace) next(fetched int) time.Duration {
	d := p.cur
	if fetched > 0 {
		d = p.min
	}
	p.cur = min(2*d, p.max)
	return d
}

// reset makes the next wait the shortest: something changed.
func (p *fetchPace) reset() { p.cur = p.min }

// backOnline is called when a peer connects: if it is the only one (we
// had none: the network came back, or the node woke up), what may have
// waited meanwhile is checked at once — the mailboxes (and their pace
// reset) and every joined topic's history — instead of at the next
// backed-off check. A node with peers already is not woken by churn.
func (m *Messenger) backOnline() {
	if m.tr == nil || len(m.tr.ConnectedPeers()) > 1 {
		return
	}
	m.kickFetch()
	b := m.bc()
	b.mu.Lock()
	for _, j := range b.topics {
		kickJoined(j)
	}
	b.mu.Unlock()
}
