package media

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/store"
)

// Who holds a file we sent to a group (issue 16: "large files wait at the
// sender or at group members …, and say so"). The members fetch it from
// each other, so the sender learns little from its own uploads; instead it
// asks each member's devices, with the have query every fetcher already
// sends (nothing new on the wire), whether they hold every chunk. A member
// that holds it is never asked again (and is remembered across restarts);
// one that is reached but not done yet is asked again on the next check;
// one that cannot be reached is offline, asked again after a back-off.
// The transfer then says how many members have it, how many are fetching
// and how many are offline: the file waits at us and at the members who
// have it for the offline ones.

// blobHolders prefixes the store blob of the members who hold a file we
// sent to a group.
const blobHolders = "media.h."

const (
	// probeTimeout bounds one member's check (dial and answers).
	probeTimeout = 15 * time.Second
	// probeParallel is how many members are checked at once.
	probeParallel = 8
	// probeBackoffMax bounds the back-off of an offline member, as a
	// multiple of the check interval.
	probeBackoffMax = 32
)

// Holders says where a file we sent to a group stands with its members
// (Transfer.Holders). Members counts the group's other members; Done those
// with every chunk; Fetching those reached at the last check without all
// of it; Offline those that could not be reached then. The rest have not
// been checked yet.
type Holders struct {
	Members  int `json:"members"`
	Done     int `json:"done"`
	Fetching int `json:"fetching"`
	Offline  int `json:"offline"`
}

// holderFile is what is known of one file's members.
type holderFile struct {
	done    map[string]bool // account id → holds every chunk (persisted)
	seen    map[string]bool // reached at the last check, not done
	offline map[string]bool
	next    map[string]time.Time // not checked again before
	wait    map[string]time.Duration
	members int
}

// holderLog keeps the holders of the files we sent to groups.
type holderLog struct {
	mu    sync.Mutex
	files map[string]*holderFile
}

func (l *holderLog) file(id string) *holderFile {
	if l.files == nil {
		l.files = map[string]*holderFile{}
	}
	f := l.files[id]
	if f == nil {
		f = &holderFile{done: map[string]bool{}, seen: map[string]bool{}, offline: map[string]bool{},
			next: map[string]time.Time{}, wait: map[string]time.Duration{}}
		l.files[id] = f
	}
	return f
}

// get returns the holders of file id, nil if it was never checked.
func (l *holderLog) get(id string) *Holders {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.files[id]
	if f == nil || f.members == 0 {
		return nil
	}
	return &Holders{Members: f.members, Done: len(f.done), Fetching: len(f.seen), Offline: len(f.offline)}
}

// GroupSent is a file we sent to a group, as listed by SentToGroups.
type GroupSent struct {
	MessageID string
	Group     string // hex id
}

// SentToGroups lists the files we sent to groups under the seed budget
// (AddOutgoingGroup; not the open ones of small channels).
func (s *Service) SentToGroups(ctx context.Context) ([]GroupSent, error) {
	var recs []record
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
		recs, err = allRecords(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []GroupSent
	for _, r := range recs {
		if !r.Incoming && r.Group != "" && !r.Open {
			out = append(out, GroupSent{MessageID: r.MessageID, Group: r.Group})
		}
	}
	return out, nil
}

// CheckHolders asks the members of the group a file we sent (message
// msgID) went to whether they hold all of it, and returns where it stands.
// members maps each other member's account id to its devices' peer ids
// (the current members: one who left no longer counts). Members known to
// hold it are not asked; the others only once their back-off (a multiple
// of every, the caller's interval between checks) has passed.
func (s *Service) CheckHolders(ctx context.Context, msgID string, members map[string][]string, every time.Duration) (Holders, error) {
	if s.cfg.Transport == nil {
		return Holders{}, errors.New("media: offline")
	}
	m, err := s.Manifest(ctx, msgID)
	if err != nil {
		return Holders{}, err
	}
	hs, err := LoadIndex(s.ch, m)
	if err != nil {
		return Holders{}, err
	}
	want := append(slices.Clone(m.Index), hs...)

	l := &s.holders
	l.mu.Lock()
	f := l.files[msgID]
	l.mu.Unlock()
	if f == nil {
		var done []string
		err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
			b, err := tx.Blob(blobHolders + msgID)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			return json.Unmarshal(b, &done)
		})
		if err != nil {
			return Holders{}, err
		}
		l.mu.Lock()
		f = l.file(msgID)
		for _, a := range done {
			f.done[a] = true
		}
		l.mu.Unlock()
	}

	now := time.Now()
	var due []string
	l.mu.Lock()
	f.members = len(members)
	for a := range f.done {
		if _, ok := members[a]; !ok {
			delete(f.done, a) // left the group
		}
	}
	for _, set := range []map[string]bool{f.seen, f.offline} {
		for a := range set {
			if _, ok := members[a]; !ok {
				delete(set, a)
			}
		}
	}
	for a := range members {
		if !f.done[a] && !now.Before(f.next[a]) {
			due = append(due, a)
		}
	}
	l.mu.Unlock()
	slices.Sort(due)

	newDone := false
	var wg sync.WaitGroup
	sem := make(chan struct{}, probeParallel)
	for _, a := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			reached, has := s.probeMember(ctx, members[a], want)
			if ctx.Err() != nil {
				return
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			delete(f.seen, a)
			delete(f.offline, a)
			switch {
			case has:
				f.done[a] = true
				newDone = true
			case reached:
				f.seen[a] = true
				f.wait[a] = every
				f.next[a] = time.Now().Add(every)
			default:
				f.offline[a] = true
				w := min(max(2*f.wait[a], every), probeBackoffMax*every)
				f.wait[a] = w
				f.next[a] = time.Now().Add(w)
			}
		}()
	}
	wg.Wait()
	if newDone {
		l.mu.Lock()
		done := make([]string, 0, len(f.done))
		for a := range f.done {
			done = append(done, a)
		}
		l.mu.Unlock()
		slices.Sort(done)
		b, _ := json.Marshal(done)
		if err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobHolders+msgID, b) }); err != nil {
			return Holders{}, err
		}
	}
	if h := l.get(msgID); h != nil {
		return *h, ctx.Err()
	}
	// No other member (a group of our own devices, or before anyone is
	// added): nobody to wait for.
	return Holders{}, ctx.Err()
}

// probeMember asks a member's devices, one after the other, whether they
// hold every chunk of want: reached says one answered, has that one holds
// them all.
func (s *Service) probeMember(ctx context.Context, devices []string, want []Hash) (reached, has bool) {
	for _, d := range devices {
		r, h, err := s.holdsAll(ctx, d, want)
		if h {
			return true, true
		}
		reached = reached || r
		if err != nil && ctx.Err() == nil {
			s.log.Debug("media: holder check", "peer", short(d), "err", err)
		}
	}
	return reached, false
}

// holdsAll asks peer whether it holds every chunk of want, with have
// queries of at most MaxHaveQuery hashes on one stream, stopping at the
// first batch with a chunk missing.
func (s *Service) holdsAll(ctx context.Context, peer string, want []Hash) (reached, has bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	st, err := s.cfg.Transport.OpenStream(ctx, peer, Protocol)
	if err != nil {
		return false, false, err
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	r := bufio.NewReader(st)
	for len(want) > 0 {
		n := min(len(want), MaxHaveQuery)
		if _, err := st.Write(haveQuery(want[:n])); err != nil {
			return true, false, err
		}
		got, err := readHave(r, n)
		if err != nil {
			return true, false, fmt.Errorf("media: have query: %w", err)
		}
		if slices.Contains(got, false) {
			return true, false, nil
		}
		want = want[n:]
	}
	return true, true, nil
}
