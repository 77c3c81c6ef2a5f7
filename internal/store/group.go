package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Group commit: many small writers share one transaction and one commit.
//
// A commit costs far more than the statements of a deposit or a delete (the
// WAL frames of every page touched, encrypted and written), so a host
// serving many depositors at once spends most of its time committing. With
// UpdateShared, callers that arrive while a transaction is being committed
// queue up, and the next transaction runs all of them: one commit for the
// lot, each caller still returning only once its writes are durable.

// maxGroup bounds the callers one shared transaction runs, so that the
// first of them does not wait for an unbounded queue.
const maxGroup = 256

// errGroupPanic is what the other callers of a shared transaction get when
// one of them panicked (the panic goes on in that caller).
var errGroupPanic = errors.New("store: a shared transaction panicked")

// groupOp is one caller of UpdateShared.
type groupOp struct {
	fn  func(tx *Tx) error
	res chan groupResult // buffered: one result, or the lead
}

type groupResult struct {
	err  error
	lead bool // run the next shared transaction, then wait again
}

// group is the queue of a Store's UpdateShared callers.
type group struct {
	mu      sync.Mutex
	queue   []*groupOp
	leading bool         // a caller is running a shared transaction
	txs     atomic.Int64 // shared transactions run
	calls   atomic.Int64 // UpdateShared calls they ran
}

// GroupStats returns how many shared transactions UpdateShared has run and
// how many calls they carried.
func (s *Store) GroupStats() (txs, calls int64) {
	return s.group.txs.Load(), s.group.calls.Load()
}

// UpdateShared runs fn in a write transaction that it may share with
// concurrent UpdateShared calls, and returns once that transaction is
// committed. fn runs inside a savepoint of its own: if it returns an
// error, its changes alone are rolled back and the error is returned
// unchanged, while the others' writes commit. fn must not call Update or
// UpdateShared, and must not depend on running alone: another caller's
// writes may precede its own in the transaction (reads inside fn see
// them). If the commit fails, every caller whose fn succeeded gets the
// error. ctx bounds the caller's wait for its turn only when no
// transaction has started it; a shared transaction runs to its end.
func (s *Store) UpdateShared(ctx context.Context, fn func(tx *Tx) error) error {
	op := &groupOp{fn: fn, res: make(chan groupResult, 1)}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, op)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	for {
		if lead {
			s.runGroup(ctx)
		}
		r := <-op.res
		if !r.lead {
			return r.err
		}
		lead = true
	}
}

// runGroup runs the queued callers (up to maxGroup) in one transaction,
// answers them, and hands the lead to the first caller still queued.
func (s *Store) runGroup(ctx context.Context) {
	g := &s.group
	g.mu.Lock()
	n := min(len(g.queue), maxGroup)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()
	g.txs.Add(1)
	g.calls.Add(int64(n))

	errs := make([]error, len(batch))
	answered := false
	defer func() {
		if !answered { // a caller's fn panicked
			for _, op := range batch {
				op.res <- groupResult{err: errGroupPanic}
			}
		}
		s.passLead()
	}()
	// The transaction is everyone's: one caller giving up must not
	// abort the others'.
	err := s.Update(context.WithoutCancel(ctx), func(tx *Tx) error {
		for i, op := range batch {
			errs[i] = runSavepoint(tx, op.fn)
			if errs[i] != nil && errors.Is(errs[i], errSavepoint) {
				return errs[i]
			}
		}
		return nil
	})
	answered = true
	for i, op := range batch {
		switch {
		case err != nil && (errs[i] == nil || errors.Is(errs[i], errSavepoint)):
			op.res <- groupResult{err: err}
		default:
			op.res <- groupResult{err: errs[i]}
		}
	}
}

// passLead wakes the first queued caller to run the next transaction, or
// marks the group idle.
func (s *Store) passLead() {
	g := &s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.leading = false
		return
	}
	g.queue[0].res <- groupResult{lead: true}
}

// errSavepoint marks a failure of the savepoint statements themselves:
// the transaction cannot go on.
var errSavepoint = errors.New("store: savepoint")

// runSavepoint runs fn inside a savepoint, rolled back if fn fails.
func runSavepoint(tx *Tx, fn func(tx *Tx) error) error {
	if _, err := tx.tx.ExecContext(tx.ctx, `SAVEPOINT shared`); err != nil {
		return fmt.Errorf("%w: %v", errSavepoint, err)
	}
	ferr := fn(tx)
	if ferr != nil {
		if _, err := tx.tx.ExecContext(tx.ctx, `ROLLBACK TO shared`); err != nil {
			return fmt.Errorf("%w: %v", errSavepoint, err)
		}
	}
	if _, err := tx.tx.ExecContext(tx.ctx, `RELEASE shared`); err != nil {
		return fmt.Errorf("%w: %v", errSavepoint, err)
	}
	return ferr
}
