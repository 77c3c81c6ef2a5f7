package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SyncClock returns when the newest change applied to a synced item
// (devices of one account, issue 17) was made (Unix ms) and by which
// device; ErrNotFound if none was.
func (tx *Tx) SyncClock(item string) (at int64, origin string, err error) {
	err = tx.queryRow(`SELECT at, origin FROM sync_clock WHERE item = ?`, item).Scan(&at, &origin)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("sync clock %q: %w", item, ErrNotFound)
	} else if err != nil {
		return 0, "", fmt.Errorf("store: sync clock: %w", err)
	}
	return at, origin, nil
}

// PutSyncClock records the newest change applied to a synced item.
func (tx *Tx) PutSyncClock(item string, at int64, origin string) error {
	if _, err := tx.exec(`INSERT INTO sync_clock (item, at, origin) VALUES (?, ?, ?)
		ON CONFLICT (item) DO UPDATE SET at = excluded.at, origin = excluded.origin`, item, at, origin); err != nil {
		return fmt.Errorf("store: put sync clock: %w", err)
	}
	return nil
}

// DeviceDueNow makes a device's queued copies due at now at the latest
// (a new change for it: try at once rather than after the backoff of the
// older ones), keeping their attempt counts.
func (tx *Tx) DeviceDueNow(peer string, now time.Time) error {
	if _, err := tx.exec(`UPDATE device_outbox SET next_attempt = min(next_attempt, ?) WHERE peer_id = ?`, toNanos(now), peer); err != nil {
		return fmt.Errorf("store: device due now: %w", err)
	}
	return nil
}
