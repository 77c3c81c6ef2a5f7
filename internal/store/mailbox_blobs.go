package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Blobs held by a mailbox host (issue 16): the sealed, padded chunks of a
// file sent to a mailbox's owner while it was offline, filed under the
// mailbox id and a 32-byte blob id. They have their own usage and quotas,
// so files never crowd out messages.

// BlobPutResult says what BlobPut did.
type BlobPutResult int

// BlobPut results.
const (
	BlobStored BlobPutResult = iota // stored now
	BlobHeld                        // held already: nothing stored
)

// BlobRoom reports whether need more blob bytes fit for mailboxID under q:
// nil, ErrMailboxFull or ErrStorageFull.
func (m *MailboxStore) BlobRoom(ctx context.Context, mailboxID []byte, need int64, q MailboxQuota) error {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return err
	}
	var used, total sql.NullInt64
	err := m.db.View(ctx, func(tx *Tx) error {
		return tx.queryRow(`SELECT (SELECT bytes FROM blob_usage WHERE mailbox = ?1), (SELECT bytes FROM blob_totals WHERE id = 1)`,
			mailboxID).Scan(&used, &total)
	})
	if err != nil {
		return fmt.Errorf("store: blob room: %w", err)
	}
	return quotaCheck(used.Int64, total.Int64, need, q)
}

func quotaCheck(used, total, need int64, q MailboxQuota) error {
	if q.PerMailbox > 0 && used+need > q.PerMailbox {
		return ErrMailboxFull
	}
	if q.Total > 0 && total+need > q.Total {
		return ErrStorageFull
	}
	return nil
}

// BlobPut stores body for mailboxID under id until expires, unless held
// already, within q (checked in the same transaction as the insert:
// ErrMailboxFull or ErrStorageFull, nothing stored).
func (m *MailboxStore) BlobPut(ctx context.Context, mailboxID, id, body []byte, expires time.Time, q MailboxQuota) (BlobPutResult, error) {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return 0, err
	}
	if err := checkHash("blob id", id); err != nil {
		return 0, err
	}
	if len(body) == 0 {
		return 0, fmt.Errorf("%w: empty blob", ErrInvalid)
	}
	size := int64(len(body))
	res := BlobHeld
	err := m.db.UpdateShared(ctx, func(tx *Tx) error {
		res = BlobHeld
		var dup, used, total sql.NullInt64
		err := tx.queryRow(`SELECT (SELECT 1 FROM blobs WHERE mailbox = ?1 AND id = ?2),
			(SELECT bytes FROM blob_usage WHERE mailbox = ?1), (SELECT bytes FROM blob_totals WHERE id = 1)`,
			mailboxID, id).Scan(&dup, &used, &total)
		if err != nil {
			return fmt.Errorf("store: blob put: %w", err)
		}
		if dup.Valid {
			return nil
		}
		if err := quotaCheck(used.Int64, total.Int64, size, q); err != nil {
			return err
		}
		if _, err := tx.exec(`INSERT INTO blobs (mailbox, id, body, size, expires) VALUES (?, ?, ?, ?, ?)`,
			mailboxID, id, body, size, clampNano(expires)); err != nil {
			return fmt.Errorf("store: blob put: %w", err)
		}
		res = BlobStored
		return nil
	})
	if err != nil {
		return 0, err
	}
	return res, nil
}

// BlobHas reports which of ids are held (and not expired at now) for
// mailboxID.
func (m *MailboxStore) BlobHas(ctx context.Context, mailboxID []byte, ids [][]byte, now time.Time) ([]bool, error) {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return nil, err
	}
	out := make([]bool, len(ids))
	err := m.db.View(ctx, func(tx *Tx) error {
		for i, id := range ids {
			var one int
			err := tx.queryRow(`SELECT 1 FROM blobs WHERE mailbox = ? AND id = ? AND expires > ?`, mailboxID, id, clampNano(now)).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			out[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: blob has: %w", err)
	}
	return out, nil
}

// BlobGet returns the blob id of mailboxID, or ErrNotFound (also once it
// expired at now).
func (m *MailboxStore) BlobGet(ctx context.Context, mailboxID, id []byte, now time.Time) ([]byte, error) {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return nil, err
	}
	var body []byte
	err := m.db.View(ctx, func(tx *Tx) error {
		return tx.queryRow(`SELECT body FROM blobs WHERE mailbox = ? AND id = ? AND expires > ?`, mailboxID, id, clampNano(now)).Scan(&body)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: blob get: %w", err)
	}
	return body, nil
}

// BlobDelete deletes the blobs ids of mailboxID and returns how many it
// deleted; unknown ids are skipped.
func (m *MailboxStore) BlobDelete(ctx context.Context, mailboxID []byte, ids [][]byte) (int, error) {
	if err := checkHash("mailbox id", mailboxID); err != nil {
		return 0, err
	}
	n, err := m.deleteKeyed(ctx, `DELETE FROM blobs WHERE mailbox = ? AND id = ?`, mailboxID, ids)
	if err != nil {
		return 0, fmt.Errorf("store: blob delete: %w", err)
	}
	return n, nil
}

// BlobUsage returns the blob bytes and count held for mailboxID (nil: in
// total). Expired blobs count until swept.
func (m *MailboxStore) BlobUsage(ctx context.Context, mailboxID []byte) (bytes, count int64, err error) {
	err = m.db.View(ctx, func(tx *Tx) error {
		var err error
		if mailboxID == nil {
			err = tx.queryRow(`SELECT bytes, count FROM blob_totals WHERE id = 1`).Scan(&bytes, &count)
		} else {
			err = tx.queryRow(`SELECT bytes, count FROM blob_usage WHERE mailbox = ?`, mailboxID).Scan(&bytes, &count)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: blob usage: %w", err)
	}
	return bytes, count, nil
}

// BlobSweep deletes every blob expired at now and returns how many, in
// transactions of at most mailboxSweepBatch rows.
func (m *MailboxStore) BlobSweep(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		var k int64
		err := m.db.Update(ctx, func(tx *Tx) error {
			res, err := tx.exec(`DELETE FROM blobs WHERE seq IN
				(SELECT seq FROM blobs WHERE expires <= ? ORDER BY expires LIMIT ?)`, clampNano(now), mailboxSweepBatch)
			if err != nil {
				return err
			}
			k, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("store: blob sweep: %w", err)
		}
		total += int(k)
		if k < int64(mailboxSweepBatch) {
			return total, nil
		}
	}
}
