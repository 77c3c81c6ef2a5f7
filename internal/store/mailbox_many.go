package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MailboxDeposit is one envelope of a MailboxStore.DepositMany.
type MailboxDeposit struct {
	MailboxID, Hash, Envelope []byte
	Expires                   time.Time
}

// MailboxDepositResult is what became of one MailboxDeposit: Stored, or a
// duplicate (Stored false, Err nil), or refused (Err: ErrMailboxFull,
// ErrStorageFull or ErrInvalid).
type MailboxDepositResult struct {
	Stored bool
	Err    error
}

// DepositMany stores the deposits in order, as Deposit does each, in one
// share of a group commit (the deposits pipelined on one stream, issue
// 18), and returns once they are committed. A refused deposit writes
// nothing and the others go on; the error is for the whole batch (storage
// failed, nothing of it committed), and then results is nil.
func (m *MailboxStore) DepositMany(ctx context.Context, ds []MailboxDeposit, q MailboxQuota) (results []MailboxDepositResult, err error) {
	results = make([]MailboxDepositResult, len(ds))
	valid := false
	for i, d := range ds {
		switch {
		case checkHash("mailbox id", d.MailboxID) != nil:
			results[i].Err = checkHash("mailbox id", d.MailboxID)
		case checkHash("envelope hash", d.Hash) != nil:
			results[i].Err = checkHash("envelope hash", d.Hash)
		case len(d.Envelope) == 0:
			results[i].Err = fmt.Errorf("%w: empty envelope", ErrInvalid)
		default:
			valid = true
		}
	}
	if !valid {
		return results, nil
	}
	err = m.db.UpdateShared(ctx, func(tx *Tx) error {
		for i, d := range ds {
			if errors.Is(results[i].Err, ErrInvalid) {
				continue
			}
			stored, err := depositTx(tx, d.MailboxID, d.Hash, d.Envelope, d.Expires, q)
			switch {
			case errors.Is(err, ErrMailboxFull), errors.Is(err, ErrStorageFull):
				results[i] = MailboxDepositResult{Err: err}
			case err != nil:
				return err
			default:
				results[i] = MailboxDepositResult{Stored: stored}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}
