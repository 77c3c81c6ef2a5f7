package media

import (
	"context"
	"fmt"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// Abandoned transfers (issue 16): an incoming file that is still not
// complete PartialMaxAge after it arrived (its sender gone for good, its
// hosts' blobs expired) is given up: its chunks are deleted, and the
// transfer says StateExpired until someone asks for the file again
// (Request, or saving it), which starts the clock anew. It runs when the
// service starts and every CleanInterval.

// StateExpired is the state of an incoming file given up for its age.
const StateExpired = "expired"

// Defaults of the expiry settings of Config.
const (
	DefaultPartialMaxAge = 30 * 24 * time.Hour // as long as hosts keep mail
	DefaultCleanInterval = time.Hour
)

// ExpirySettings are the expiry settings of a Service: zero values mean
// the defaults.
type ExpirySettings struct {
	PartialMaxAge time.Duration    // 0: DefaultPartialMaxAge
	CleanInterval time.Duration    // 0: DefaultCleanInterval
	Now           func() time.Time // nil: time.Now
}

func (s *Service) expiry() ExpirySettings {
	e := s.cfg.Expiry
	if e.PartialMaxAge <= 0 {
		e.PartialMaxAge = DefaultPartialMaxAge
	}
	if e.CleanInterval <= 0 {
		e.CleanInterval = DefaultCleanInterval
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

// expireLoop expires abandoned transfers every CleanInterval (Start does
// it once before any fetch starts).
func (s *Service) expireLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.expiry().CleanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.expireNow(ctx)
	}
}

func (s *Service) expireNow(ctx context.Context) {
	if n, err := s.ExpirePartial(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("media: expiring transfers failed", "err", err)
	} else if n > 0 {
		s.log.Info("media: abandoned transfers expired", "n", n)
	}
}

// ExpirePartial gives up the incoming transfers older than PartialMaxAge
// that are not complete, deleting their chunks, and returns how many. A
// record from before ages were kept starts its clock now.
func (s *Service) ExpirePartial(ctx context.Context) (int, error) {
	e := s.expiry()
	now := e.Now()
	var expired []record
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		expired = expired[:0]
		recs, err := allRecords(tx)
		if err != nil {
			return err
		}
		// Chunks of a manifest another live record holds stay.
		live := map[Hash]int{}
		for _, r := range recs {
			if m, err := ParseManifest(r.Manifest); err == nil && len(m.Index) > 0 && !r.Expired {
				live[m.Index[0]]++
			}
		}
		for _, r := range recs {
			if !r.Incoming || r.Expired {
				continue
			}
			if r.Added == 0 {
				r.Added = now.Unix()
				if err := putRecord(tx, r); err != nil {
					return err
				}
				continue
			}
			if now.Sub(time.Unix(r.Added, 0)) < e.PartialMaxAge {
				continue
			}
			s.mu.Lock()
			busy := s.running[r.MessageID] || s.prog[r.MessageID].state == StateComplete
			s.mu.Unlock()
			if busy {
				continue
			}
			m, err := ParseManifest(r.Manifest)
			if err == nil {
				if _, missing, merr := Missing(s.ch, m); merr == nil && len(missing) == 0 {
					continue // complete
				}
				if live[m.Index[0]] > 1 {
					continue
				}
			}
			// The chunks go first: a record is marked once its chunks
			// are gone (a crash between leaves a file to fetch again).
			if err == nil {
				s.removeChunks(m)
			}
			r.Expired = true
			if err := putRecord(tx, r); err != nil {
				return err
			}
			expired = append(expired, r)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, r := range expired {
		s.setProg(r.MessageID, progress{state: StateExpired,
			err: fmt.Sprintf("given up after %s incomplete: save the file to ask for it again", e.PartialMaxAge)})
		s.changed(r, StateExpired)
	}
	return len(expired), nil
}

// removeChunks deletes the chunks of m held here (data, then index).
func (s *Service) removeChunks(m *Manifest) {
	hs, _ := LoadIndex(s.ch, m)
	s.ch.drop(m, hs)
}
