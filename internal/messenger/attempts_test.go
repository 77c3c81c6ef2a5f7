package messenger

import (
	"context"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// waitAttempts waits until every queued message of n to contact has had at
// least k failed delivery attempts: the condition "several attempts
// failed", instead of a sleep guessed to cover them.
func waitAttempts(t testing.TB, n *tnode, contact string, k int) {
	t.Helper()
	ci, _, err := n.m.Messages(context.Background(), contact, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, n.name+"'s messages to "+contact+" tried and failed", func() bool {
		var items []store.OutboxItem
		if err := n.st.View(context.Background(), func(tx *store.Tx) (err error) { items, err = tx.Outbox(ci.ID); return err }); err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Attempts < k {
				return false
			}
		}
		return len(items) > 0
	})
}
