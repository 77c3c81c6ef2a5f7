package messenger

import (
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// sentClock gives the timestamps of what we write (1:1 messages and group
// posts). A receiver shows each sender's messages in the order of these
// timestamps (store/order.go), whatever the order they arrive in, so they
// must be strictly increasing: the clock in whole milliseconds (what the
// wire carries), and at least one past the last we wrote, also across
// restarts and a clock set back.
type sentClock struct {
	mu     sync.Mutex
	loaded bool
	last   int64 // unix ms
}

// next returns the timestamp of a message written now, in tx.
func (c *sentClock) next(tx *store.Tx, self string, now time.Time) (time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		last, err := tx.LastSent(self)
		if err != nil {
			return time.Time{}, err
		}
		c.last, c.loaded = max(c.last, last.UnixMilli()), true
	}
	c.last = max(c.last+1, now.UnixMilli())
	return time.UnixMilli(c.last), nil
}
