package media

import (
	"context"

	"github.com/samizdat-im/samizdat/internal/store"
)

// AddOutgoingOpen records a file we sent to group (a group's or
// channel's hex id) that we serve whole to every member who asks, not
// under the seed budget: for a few receivers who may have no one else to
// take it from (a small channel whose subscribers know only its owner),
// where waiting for the budget's refill would cost them minutes.
func (s *Service) AddOutgoingOpen(ctx context.Context, msgID, group string, m *Manifest) error {
	return s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		return putRecord(tx, record{MessageID: msgID, Group: group, Open: true, Manifest: m.Marshal()})
	})
}
