package media

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Fetch scheduling. Every source gets one stream, on which a writer keeps
// up to window requests ahead of a reader that takes the answers in
// order. The writer asks the shared scheduler what to request next: a
// chunk this source can give that nobody else is bringing, or (a peer
// with nothing to offer yet) which of the wanted chunks it holds now.

const (
	// window is how many requests a fetcher keeps in flight on one
	// stream, so that a long round trip does not idle the link.
	window = 16
	// busyWait is how long a source that answered busy for a chunk is not
	// asked for it again.
	busyWait = time.Second
	// Have queries to a peer with nothing new to offer back off from
	// pollMin to pollMax.
	pollMin = 25 * time.Millisecond
	pollMax = 250 * time.Millisecond
	// stallTimeout ends a fetch in which no source has brought anything
	// for that long (the service tries again later).
	stallTimeout = 2 * requestTimeout
	// storeDepth is how many fetched chunks wait to be checked and
	// written behind a stream's reader.
	storeDepth = 4
	// sessionRetries is how often a source whose stream broke after it
	// sent something is given a new stream.
	sessionRetries = 3
)

// source is one peer a fetch asks for chunks.
type source struct {
	id   string
	seed bool // holds the whole file: asked for what no peer offers
	// have: chunks a peer said it holds; lacks: chunks not to ask this
	// source for before the time given.
	have  map[Hash]bool
	lacks map[Hash]time.Time
	gone  map[Hash]bool // a seed said it does not hold these
	dead  bool
	poll  time.Duration // peers: wait before the next have query
	last  time.Time     // peers: when the last have query went out
}

// request is one request in flight on a stream: a chunk, or a have query.
type request struct {
	hash Hash
	have []Hash
}

// sched shares the wanted chunks among the sources of one fetch.
type sched struct {
	ctx   context.Context
	op    Opener
	ch    *Chunks
	swarm bool // there are peers: seeds only bring what they do not offer
	got   func()

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	order    []Hash        // to fetch, in the order to ask
	wanted   map[Hash]bool // not stored yet
	inflight map[Hash]bool
	srcs     []*source
	errs     []error
	progress time.Time // when a chunk last arrived
}

// fetchSet fetches the chunks want from the sources into ch, all sources
// at once. A source that fails (offline, sends a corrupt chunk, a seed
// that lacks one) is dropped and its chunks are left to the others. got
// is called for every chunk stored.
func fetchSet(ctx context.Context, op Opener, ch *Chunks, want []Hash, seeds, peers []string, got func()) error {
	s := &sched{ctx: ctx, op: op, ch: ch, swarm: len(peers) > 0, got: got, changed: make(chan struct{}),
		wanted: map[Hash]bool{}, inflight: map[Hash]bool{}, progress: time.Now()}
	for _, h := range want {
		if !s.wanted[h] && !ch.Has(h) {
			s.wanted[h] = true
			s.order = append(s.order, h)
		}
	}
	if len(s.wanted) == 0 {
		return nil // nothing to dial for
	}
	for _, id := range seeds {
		s.srcs = append(s.srcs, &source{id: id, seed: true, lacks: map[Hash]time.Time{}, gone: map[Hash]bool{}})
	}
	for _, id := range peers {
		s.srcs = append(s.srcs, &source{id: id, have: map[Hash]bool{}, lacks: map[Hash]time.Time{}})
	}
	var wg sync.WaitGroup
	for _, src := range s.srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(src)
		}()
	}
	wg.Wait()
	if len(s.wanted) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w (%d chunks missing): %w", ErrNoSource, len(s.wanted), errors.Join(s.errs...))
}

// broadcast wakes every writer waiting for a change. Called with mu held.
func (s *sched) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// pick chooses the next chunk to ask src for. Called with mu held.
func (s *sched) pick(src *source, now time.Time) (Hash, bool) {
	// Drop the stored head of the order, so that an in-order fetch from
	// one source scans little.
	for len(s.order) > 0 && !s.wanted[s.order[0]] {
		s.order = s.order[1:]
	}
	for _, h := range s.order {
		if !s.wanted[h] || s.inflight[h] || src.lacks[h].After(now) || src.gone[h] {
			continue
		}
		if !src.seed {
			if src.have[h] {
				return h, true
			}
			continue
		}
		if s.swarm && s.offered(h) {
			continue // a peer has it: leave it to them
		}
		return h, true
	}
	return Hash{}, false
}

// offered reports whether a live peer said it holds h. Called with mu held.
func (s *sched) offered(h Hash) bool {
	for _, p := range s.srcs {
		if !p.seed && !p.dead && p.have[h] {
			return true
		}
	}
	return false
}

// next blocks until there is something to ask src, and marks it in
// flight; false when the fetch is over for src.
func (s *sched) next(src *source, stop <-chan struct{}) (request, bool) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		if len(s.wanted) == 0 || src.dead || s.ctx.Err() != nil {
			s.mu.Unlock()
			return request{}, false
		}
		now := time.Now()
		if now.Sub(s.progress) > stallTimeout {
			s.kill(src, errors.New("nothing arrived for too long"))
			s.mu.Unlock()
			return request{}, false
		}
		if h, ok := s.pick(src, now); ok {
			s.inflight[h] = true
			s.mu.Unlock()
			return request{hash: h}, true
		}
		if src.seed && len(src.gone) > 0 && s.lacksAll(src) {
			s.kill(src, fmt.Errorf("%w: %d chunks", ErrNoChunk, len(src.gone)))
			s.mu.Unlock()
			return request{}, false
		}
		wake := now.Add(pollMax)
		if !src.seed {
			if src.poll == 0 || now.Sub(src.last) >= src.poll {
				var q []Hash
				for _, h := range s.order {
					if s.wanted[h] && !src.have[h] && len(q) < MaxHaveQuery {
						q = append(q, h)
					}
				}
				src.last = now
				if len(q) > 0 {
					s.mu.Unlock()
					return request{have: q}, true
				}
			}
			wake = src.last.Add(src.poll)
		}
		for _, until := range src.lacks {
			if until.After(now) && until.Before(wake) {
				wake = until
			}
		}
		changed := s.changed
		s.mu.Unlock()
		t.Reset(time.Until(wake))
		select {
		case <-changed:
		case <-t.C:
		case <-s.ctx.Done():
		case <-stop:
			return request{}, false
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
	}
}

// lacksAll reports whether seed src said it lacks every chunk still
// wanted. Called with mu held.
func (s *sched) lacksAll(src *source) bool {
	for h := range s.wanted {
		if !src.gone[h] {
			return false
		}
	}
	return true
}

// giveBack returns a request that got no answer. Called with mu held.
func (s *sched) giveBack(r request) {
	if r.have == nil {
		delete(s.inflight, r.hash)
	}
}

// kill drops src with err. Called with mu held.
func (s *sched) kill(src *source, err error) {
	if src.dead {
		return
	}
	src.dead = true
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("source %s: %w", short(src.id), err))
	}
	s.broadcast()
}

// answered applies the answer to r from src; a non-nil return is fatal
// for the stream.
func (s *sched) answered(src *source, r request, haves []bool, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.have != nil {
		if err != nil {
			return err
		}
		fresh := false
		for i, ok := range haves {
			if ok && !src.have[r.have[i]] {
				src.have[r.have[i]], fresh = true, true
			}
		}
		if fresh {
			src.poll = pollMin
			s.broadcast()
		} else {
			src.poll = min(pollMax, max(pollMin, 2*src.poll))
		}
		return nil
	}
	delete(s.inflight, r.hash)
	defer s.broadcast()
	switch {
	case err == nil:
		if s.wanted[r.hash] {
			// Checked and stored outside the lock by the caller.
			delete(s.wanted, r.hash)
			s.progress = time.Now()
			s.got()
		}
		return nil
	case errors.Is(err, errBusy):
		src.lacks[r.hash] = time.Now().Add(busyWait)
		return nil
	case errors.Is(err, ErrNoChunk) && src.seed:
		src.gone[r.hash] = true // the others may have it
		return nil
	case errors.Is(err, ErrNoChunk):
		delete(src.have, r.hash) // it said it had it: lost since
		return nil
	}
	return err
}

// work fetches from src until the fetch is over or src fails.
func (s *sched) work(src *source) {
	for tries := 0; ; tries++ {
		progressed, fatal, err := s.session(src)
		if err == nil {
			return
		}
		if !progressed || fatal || tries >= sessionRetries || s.ctx.Err() != nil {
			s.mu.Lock()
			s.kill(src, err)
			s.mu.Unlock()
			return
		}
	}
}

// session runs one stream to src: a writer ahead, a reader behind.
func (s *sched) session(src *source) (progressed, fatal bool, err error) {
	first, ok := s.next(src, nil)
	if !ok {
		return false, false, nil
	}
	st, v1, err := openBlob(s.ctx, s.op, src.id)
	if err != nil {
		s.mu.Lock()
		s.giveBack(first)
		s.mu.Unlock()
		return false, false, err
	}
	defer st.Close()
	if v1 && !s.asV1(src, &first) {
		return false, false, nil
	}
	inflight := make(chan request, window)
	pc := newPacer()
	stop := make(chan struct{})
	halt := sync.OnceFunc(func() { close(stop) })
	var (
		werr    error
		wdone   = make(chan struct{})
		pending *request // taken by the writer, not sent
	)
	go func() { // the writer
		defer close(wdone)
		defer close(inflight)
		r, ok := first, true
		for {
			if !ok {
				st.CloseWrite()
				return
			}
			select {
			case inflight <- r:
				pc.sent()
			case <-stop:
				pending = &r
				return
			}
			st.SetDeadline(time.Now().Add(requestTimeout))
			b := r.hash[:]
			if r.have != nil {
				b = haveQuery(r.have)
			}
			if _, err := st.Write(b); err != nil {
				werr = err
				return
			}
			if !pc.wait(stop) {
				return
			}
			r, ok = s.next(src, stop)
		}
	}()
	// A small buffer: a chunk's header comes through it, the chunk
	// itself is read straight into the storer's buffer (a larger one
	// would copy the first 64 KiB of every chunk twice).
	rd := bufio.NewReaderSize(st, 4<<10)
	// Chunks are checked and written by a storer behind the reader, so
	// that hashing and the file system do not stall the stream.
	type job struct {
		r  request
		b  []byte
		ok bool // b hashes to r.hash
	}
	free := make(chan []byte, storeDepth)
	for range storeDepth {
		free <- make([]byte, MaxSealedChunk)
	}
	jobs := make(chan job, storeDepth)
	var (
		smu     sync.Mutex
		serr    error
		sfailed []request
		sdone   = make(chan struct{})
	)
	go func() { // the storer
		defer close(sdone)
		for j := range jobs {
			smu.Lock()
			failedBefore := serr != nil
			smu.Unlock()
			if failedBefore {
				smu.Lock()
				sfailed = append(sfailed, j.r)
				smu.Unlock()
				free <- j.b[:cap(j.b)]
				continue
			}
			err := ErrCorruptChunk
			if j.ok {
				err = s.ch.put(j.r.hash, j.b)
			}
			free <- j.b[:cap(j.b)]
			if err == nil {
				err = s.answered(src, j.r, nil, nil)
			}
			if err != nil {
				smu.Lock()
				serr = err
				sfailed = append(sfailed, j.r)
				smu.Unlock()
				st.Reset() // stops the reader
				halt()     // and the writer
			}
		}
	}()
	var failed *request
	var rerr error
	for r := range inflight {
		if err := s.ctx.Err(); err != nil {
			rerr, failed = err, &r
			break
		}
		st.SetDeadline(time.Now().Add(requestTimeout))
		var haves []bool
		var aerr error
		if r.have != nil {
			haves, aerr = readHave(rd, len(r.have))
			pc.answered(0)
		} else {
			var b []byte
			buf := <-free
			b, aerr = readAnswer(rd, r.hash, buf)
			pc.answered(len(b))
			if aerr == nil {
				progressed = true
				// Checked here, not by the storer: the reader's
				// goroutine is otherwise idle while the next
				// answer arrives, the storer's busy with the disk.
				jobs <- job{r, b, sha256.Sum256(b) == r.hash}
				continue
			}
			free <- buf
		}
		if aerr == nil || errors.Is(aerr, errBusy) || errors.Is(aerr, ErrNoChunk) {
			progressed = true
		}
		if err := s.answered(src, r, haves, aerr); err != nil {
			rerr, failed = err, &r
			break
		}
	}
	close(jobs)
	<-sdone
	if serr != nil {
		rerr = serr
		if errors.Is(serr, ErrCorruptChunk) {
			fatal = true
		}
	}
	if rerr == nil && werr == nil && pending == nil && s.ctx.Err() == nil {
		return progressed, false, nil
	}
	// Give back everything not answered, then end the stream.
	st.Reset()
	halt()
	<-wdone
	s.mu.Lock()
	if failed != nil {
		s.giveBack(*failed)
	}
	for _, r := range sfailed {
		s.giveBack(r)
	}
	if pending != nil {
		s.giveBack(*pending)
	}
	for r := range inflight {
		s.giveBack(r)
	}
	s.broadcast()
	s.mu.Unlock()
	err = rerr
	if err == nil {
		err = werr
	}
	if err == nil {
		err = s.ctx.Err()
	}
	return progressed, fatal, err
}

// queueTarget is how long a stream's answers in flight should take to
// arrive at the rate measured: on a slow link, a stream keeps few chunks
// in flight, so that a text message on the same connection does not wait
// behind megabytes of file queued in the buffers ahead of it.
const queueTarget = 250 * time.Millisecond

// pacer sizes a stream's requests in flight to its rate: one chunk on a
// slow link, up to window on a fast one.
type pacer struct {
	mu   sync.Mutex
	n    int     // requests in flight
	rate float64 // bytes/s, smoothed
	last time.Time
	room chan struct{}
}

func newPacer() *pacer { return &pacer{room: make(chan struct{}, 1), last: time.Now()} }

// allowed is how many requests may be in flight. Called with mu held.
func (p *pacer) allowed() int {
	if p.rate == 0 {
		return 2 // no measure yet
	}
	return max(1, min(window, 1+int(p.rate*queueTarget.Seconds()/ChunkSize)))
}

func (p *pacer) sent() {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
}

// wait blocks until another request may go out; false if stop closed.
func (p *pacer) wait(stop <-chan struct{}) bool {
	for {
		p.mu.Lock()
		ok := p.n < p.allowed()
		p.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-p.room:
		case <-stop:
			return false
		}
	}
}

// answered counts an answer of n bytes read.
func (p *pacer) answered(n int) {
	p.mu.Lock()
	p.n--
	if n > 0 {
		now := time.Now()
		dt := now.Sub(p.last).Seconds()
		p.last = now
		if dt > 0 {
			r := float64(n) / dt
			if p.rate == 0 {
				p.rate = r
			} else {
				p.rate = 0.7*p.rate + 0.3*r
			}
		}
	}
	p.mu.Unlock()
	select {
	case p.room <- struct{}{}:
	default:
	}
}
