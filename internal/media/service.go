package media

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// DefaultMaxFileSize is the largest file sent or fetched when
// Config.MaxFileSize is zero (WhatsApp's limit).
const DefaultMaxFileSize = 2 << 30

// retryInterval is how often failed incoming transfers are tried again.
const retryInterval = 30 * time.Second

// servedSaveInterval is how often what was served of the files we sent is
// written to the store (and on Close).
const servedSaveInterval = 2 * time.Second

// Store blob names owned by this package: the list of transfers, and one
// record per transfer (manifests hold file keys: they live only in the
// encrypted store, never in the chunk directory).
const (
	blobList   = "media.transfers"
	blobRecord = "media.t."
)

// Errors returned to users of the Service.
var (
	// ErrTooLarge is returned for a file over Config.MaxFileSize.
	ErrTooLarge = errors.New("file is too large")
	// ErrNoTransfer is returned for a message that carries no file.
	ErrNoTransfer = errors.New("no file with this message")
)

// Transfer states.
const (
	StateSending  = "sending"  // ours: chunks served to whoever asks
	StateFetching = "fetching" // theirs: chunks on their way
	StateFailed   = "failed"   // theirs: stopped, retried later (Error says why)
	StateComplete = "complete" // theirs: every chunk here and checked
)

// Transport is what the service needs from the network (internal/p2p).
type Transport interface {
	Opener
	Handle(protocol string, h func(s p2p.Stream))
	Unhandle(protocol string)
}

// Config configures a Service. Zero values are documented defaults.
type Config struct {
	Dir         string       // chunk directory (required)
	Store       *store.Store // where transfer records live (required)
	Transport   Transport    // nil: offline, nothing served or fetched
	MaxFileSize int64        // 0: DefaultMaxFileSize
	// RetryInterval is how often stopped incoming transfers are tried
	// again (0: 30 s).
	RetryInterval time.Duration
	Logger        *slog.Logger // nil: discard
	// OnChange, if set, is called when an incoming file completes or its
	// transfer stops (state StateComplete or StateFailed), from the
	// fetching goroutine: it must not block.
	OnChange func(msgID string, contactID int64, state string)
	// Expiry: when incomplete incoming files are given up (expire.go).
	Expiry ExpirySettings
}

// Transfer is one file sent or received, as listed by Transfers.
type Transfer struct {
	MessageID string `json:"messageId"`
	ContactID int64  `json:"contactId"`
	Group     string `json:"group,omitempty"` // hex group id: sent to a group
	Incoming  bool   `json:"incoming"`
	Name      string `json:"name"`
	MIME      string `json:"mime"`
	Size      int64  `json:"size"`
	Done      int    `json:"chunksDone"`
	Total     int    `json:"chunksTotal"`
	State     string `json:"state"`
	Error     string `json:"error,omitempty"`
	// Sent files: how many of the data chunks this node has sent to
	// others (each counted once: for a file to a contact, what the
	// recipient has fetched), and the bytes of the file's chunks sent in
	// all (repeats and the index included). 0 for received files.
	ChunksServed int   `json:"chunksServed"`
	BytesServed  int64 `json:"bytesServed"`
	// HostState, for a file we sent to a contact: where it stands with
	// the recipient's mailbox hosts (HostDeposited, HostOverQuota, …;
	// hosted.go), and why it waits here if it does.
	HostState string `json:"hostState,omitempty"`
	HostError string `json:"hostError,omitempty"`
	// Holders, for a file we sent to a group: how many of its members
	// hold it, fetch it, or are offline (holders.go; absent until the
	// members were first checked).
	Holders *Holders `json:"holders,omitempty"`
}

// record is what the store keeps of a transfer.
type record struct {
	MessageID string   `json:"id"`
	ContactID int64    `json:"contact"`
	Incoming  bool     `json:"in"`
	Manifest  []byte   `json:"manifest"`
	Sources   []string `json:"sources,omitempty"`
	// Wanted: the user asked for this file (Request), so it is fetched
	// whatever the automatic limit.
	Wanted bool `json:"want,omitempty"`
	// Group files: the group (hex id), and how many of Sources are the
	// sender's devices (seeds); the others are members (peers). Zero:
	// every source holds the whole file.
	Group string `json:"group,omitempty"`
	Seeds int    `json:"seeds,omitempty"`
	// Ours: where the file stands with the recipient's mailbox hosts
	// (hosted.go).
	HostState string `json:"host,omitempty"`
	HostError string `json:"hostErr,omitempty"`
	HostSkip  bool   `json:"hostSkip,omitempty"` // needs no deposit (delivered)
	// Theirs: when the record was made (unix seconds) and whether the
	// partial transfer was abandoned for its age (expire.go).
	Added   int64 `json:"added,omitempty"`
	Expired bool  `json:"expired,omitempty"`
	// Open: a file we sent to a group or channel that we serve to every
	// asker, not under the seed budget (AddOutgoingOpen).
	Open bool `json:"open,omitempty"`
}

type progress struct {
	done, total int
	state, err  string
}

// Service keeps chunks, serves them on Protocol and fetches incoming files
// in the background. It is safe for concurrent use.
type Service struct {
	cfg Config
	ch  *Chunks
	log *slog.Logger

	budget   *seedBudget  // what we serve of the files we sent to groups
	served   atomic.Int64 // bytes of chunks served
	servedBy *servedLog   // what we served of each file we sent
	holders  holderLog    // who holds the files we sent to groups (holders.go)

	mu      sync.Mutex
	running map[string]bool
	// autoLimit: larger incoming files wait for Request (0: none wait).
	autoLimit int64
	// lanes: one fetch at a time from each sender (keyed by its first
	// source), so that the files of an album share the link in turn and
	// their chunks in flight stay few (pacer).
	lanes map[string]chan struct{}
	prog  map[string]progress
	// stalled: sources of transfers that stopped, so that one of them
	// connecting retries them at once rather than at the next
	// RetryInterval (SourceConnected). Bounded.
	stalled map[string]bool

	hostBlobs HostBlobs            // our mailbox hosts' blobs (hosted.go)
	hostTried map[string]time.Time // when our hosts last had none of a file

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens the chunk directory and starts serving chunks.
func New(cfg Config) (*Service, error) {
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = retryInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ch, err := OpenChunks(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, ch: ch, log: cfg.Logger, budget: newSeedBudget(), servedBy: newServedLog(), running: map[string]bool{}, lanes: map[string]chan struct{}{}, prog: map[string]progress{}, kick: make(chan struct{}, 1)}
	if err := s.loadBudget(); err != nil {
		return nil, err
	}
	if cfg.Transport != nil {
		cfg.Transport.Handle(Protocol, func(st p2p.Stream) {
			ServeWith(ch, st, s.budget.allow, func(h Hash, n int) {
				s.served.Add(int64(n))
				s.servedBy.sent(h, n)
			})
		})
		cfg.Transport.Handle(ProtocolV1, func(st p2p.Stream) {
			ServeWith(ch, st, nil, func(h Hash, n int) {
				s.served.Add(int64(n))
				s.servedBy.sent(h, n)
			})
		})
	}
	return s, nil
}

// loadBudget puts the files we sent to groups under the seed budget,
// counts what is served of every file we sent, and opens the packs of the
// files received (LoadIndex), so that their chunks are served to others
// from the start.
func (s *Service) loadBudget() error {
	var recs []record
	err := s.cfg.Store.View(context.Background(), func(tx *store.Tx) (err error) {
		recs, err = allRecords(tx)
		return err
	})
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Incoming {
			if m, err := ParseManifest(r.Manifest); err == nil {
				LoadIndex(s.ch, m) // the index may not be here yet
			}
			continue
		}
		m, err := ParseManifest(r.Manifest)
		if err != nil {
			continue
		}
		if err := s.trackSent(context.Background(), r.MessageID, m); err != nil {
			return err
		}
		if r.Group != "" && !r.Open {
			if hs, err := LoadIndex(s.ch, m); err == nil {
				s.budget.add(hs)
			}
		}
	}
	return nil
}

// BytesServed is how many bytes of chunks this node has sent to others
// since it started.
func (s *Service) BytesServed() int64 { return s.served.Load() }

// Chunks is the service's chunk store.
func (s *Service) Chunks() *Chunks { return s.ch }

// MaxFileSize is the configured limit.
func (s *Service) MaxFileSize() int64 { return s.cfg.MaxFileSize }

// Start resumes unfinished incoming transfers and fetches new ones until
// Close.
func (s *Service) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.expireNow(ctx) // before the first fetch: what was abandoned goes
	s.wg.Add(2)
	go s.loop(ctx)
	go s.expireLoop(ctx)
}

// Close stops serving and fetching; partial transfers resume on the next
// Start.
func (s *Service) Close() {
	if s.cfg.Transport != nil {
		s.cfg.Transport.Unhandle(Protocol)
		s.cfg.Transport.Unhandle(ProtocolV1)
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.saveServed(context.Background())
	s.ch.Close()
}

// Prepare reads the file at path, strips an image's metadata and makes its
// preview, and seals it into the chunk store. The manifest it returns is
// what the message carries.
func (s *Service) Prepare(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > s.cfg.MaxFileSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrTooLarge, path, fi.Size(), s.cfg.MaxFileSize)
	}
	return s.PrepareReader(f, CleanName(path), fi.Size(), "")
}

// AddOutgoing records a file we sent (for Transfers).
func (s *Service) AddOutgoing(ctx context.Context, msgID string, contactID int64, m *Manifest) error {
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		return putRecord(tx, record{MessageID: msgID, ContactID: contactID, Manifest: m.Marshal()})
	})
	if err != nil {
		return err
	}
	return s.trackSent(ctx, msgID, m)
}

// AddOutgoingGroup records a file we sent to group (hex id). Its members
// fetch it from each other: we give each chunk to about one of them
// (seedBudget).
func (s *Service) AddOutgoingGroup(ctx context.Context, msgID, group string, m *Manifest) error {
	hs, err := LoadIndex(s.ch, m)
	if err != nil {
		return err
	}
	s.budget.add(hs)
	err = s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		return putRecord(tx, record{MessageID: msgID, Group: group, Manifest: m.Marshal()})
	})
	if err != nil {
		return err
	}
	return s.trackSent(ctx, msgID, m)
}

// AddIncomingGroup is AddIncoming for a file sent to group (hex id):
// seeds are the sender's devices, peers the other members' (fetching it
// too, and serving what they have).
func (s *Service) AddIncomingGroup(tx *store.Tx, msgID, group string, manifest []byte, seeds, peers []string) error {
	r := record{MessageID: msgID, Incoming: true, Manifest: manifest, Group: group, Seeds: len(seeds), Added: s.expiry().Now().Unix(),
		Sources: append(append([]string(nil), seeds...), peers...)}
	if len(seeds) == 0 {
		r.Seeds = -1 // no seed known: peers only
	}
	if err := putRecord(tx, r); err != nil {
		return err
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// AddIncoming records a file received with message msgID, inside the
// transaction that stores the message, so that neither is kept without
// the other; fetching from sources starts once it commits. A manifest
// that does not parse or is over the limit is recorded as failed.
func (s *Service) AddIncoming(tx *store.Tx, msgID string, contactID int64, manifest []byte, sources []string) error {
	if err := putRecord(tx, record{MessageID: msgID, ContactID: contactID, Incoming: true, Manifest: manifest, Sources: sources, Added: s.expiry().Now().Unix()}); err != nil {
		return err
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func putRecord(tx *store.Tx, r record) error {
	ids, err := listIDs(tx)
	if err != nil {
		return err
	}
	if !slices.Contains(ids, r.MessageID) {
		ids = append(ids, r.MessageID)
		b, _ := json.Marshal(ids)
		if err := tx.PutBlob(blobList, b); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(r)
	return tx.PutBlob(blobRecord+r.MessageID, b)
}

func listIDs(tx *store.Tx) ([]string, error) {
	b, err := tx.Blob(blobList)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("media: transfer list: %w", err)
	}
	return ids, nil
}

func getRecord(tx *store.Tx, id string) (record, error) {
	var r record
	b, err := tx.Blob(blobRecord + id)
	if errors.Is(err, store.ErrNotFound) {
		return r, fmt.Errorf("%w: %s", ErrNoTransfer, id)
	} else if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("media: transfer record: %w", err)
	}
	return r, nil
}

// records reads every record. It runs as a write transaction on purpose:
// the store runs those one at a time, so a record added by a transaction
// that kicked us is visible once that transaction has committed.
func (s *Service) records(ctx context.Context) ([]record, error) {
	var out []record
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) (err error) {
		out, err = allRecords(tx)
		return err
	})
	return out, err
}

// allRecords reads every transfer record in tx.
func allRecords(tx *store.Tx) ([]record, error) {
	ids, err := listIDs(tx)
	if err != nil {
		return nil, err
	}
	out := make([]record, 0, len(ids))
	for _, id := range ids {
		r, err := getRecord(tx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Service) loop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RetryInterval)
	defer t.Stop()
	save := time.NewTicker(servedSaveInterval)
	defer save.Stop()
	for {
		s.startFetches(ctx)
	wait:
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		case <-save.C:
			s.saveServed(ctx)
			goto wait
		}
	}
}

func (s *Service) startFetches(ctx context.Context) {
	if s.cfg.Transport == nil {
		return
	}
	recs, err := s.records(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("media: reading transfers failed", "err", err)
		}
		return
	}
	for _, r := range recs {
		if !r.Incoming || r.Expired || s.waits(r) {
			continue
		}
		s.mu.Lock()
		p := s.prog[r.MessageID]
		skip := s.running[r.MessageID] || p.state == StateComplete
		if !skip {
			s.running[r.MessageID] = true
		}
		s.mu.Unlock()
		if skip {
			continue
		}
		s.wg.Add(1)
		go s.fetch(ctx, r)
	}
}

func (s *Service) setProg(id string, p progress) {
	s.mu.Lock()
	s.prog[id] = p
	s.mu.Unlock()
}

func (s *Service) fetch(ctx context.Context, r record) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.running, r.MessageID)
		s.mu.Unlock()
	}()
	lane := ""
	if len(r.Sources) > 0 {
		lane = r.Sources[0]
	}
	s.mu.Lock()
	l := s.lanes[lane]
	if l == nil {
		l = make(chan struct{}, 1)
		s.lanes[lane] = l
	}
	s.mu.Unlock()
	select {
	case l <- struct{}{}:
		defer func() { <-l }()
	case <-ctx.Done():
		return
	}
	m, err := ParseManifest(r.Manifest)
	if err == nil && m.Size > s.cfg.MaxFileSize {
		err = fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, m.Size, s.cfg.MaxFileSize)
	}
	if err != nil {
		s.setProg(r.MessageID, progress{state: StateFailed, err: err.Error()})
		s.changed(r, StateFailed)
		return
	}
	total := m.Chunks()
	seeds, peers := r.Sources, []string(nil)
	if r.Seeds != 0 {
		n := max(0, min(r.Seeds, len(r.Sources)))
		seeds, peers = r.Sources[:n], r.Sources[n:]
	}
	s.fetchHosted(ctx, r, m) // what our mailbox hosts hold for us first
	err = FetchSwarm(ctx, s.cfg.Transport, s.ch, m, seeds, peers, func(done, total int) {
		s.setProg(r.MessageID, progress{done: done, total: total, state: StateFetching})
	})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.log.Info("media: transfer stopped", "msg", r.MessageID[:8], "err", err)
		s.mu.Lock()
		p := s.prog[r.MessageID]
		p.state, p.err = StateFailed, err.Error()
		s.prog[r.MessageID] = p
		if s.stalled == nil || len(s.stalled) > maxStalled {
			s.stalled = map[string]bool{}
		}
		for _, src := range r.Sources {
			s.stalled[src] = true
		}
		s.mu.Unlock()
		s.changed(r, StateFailed)
		return
	}
	s.setProg(r.MessageID, progress{done: total, total: total, state: StateComplete})
	s.changed(r, StateComplete)
	s.deleteHosted(ctx, r, m)
}

// maxStalled bounds the sources remembered by SourceConnected.
const maxStalled = 4096

// SourceConnected tells the service that peer just connected: transfers
// that stopped while fetching from it are tried again at once (a sender
// that comes back, or that we reach again after our own restart), not
// at the next RetryInterval.
func (s *Service) SourceConnected(peer string) {
	s.mu.Lock()
	ok := s.stalled[peer]
	delete(s.stalled, peer)
	s.mu.Unlock()
	if ok {
		s.kickLoop()
	}
}

// Transfers lists every file sent and received, with progress.
func (s *Service) Transfers(ctx context.Context) ([]Transfer, error) {
	var recs []record
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
		recs, err = allRecords(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Transfer, 0, len(recs))
	for _, r := range recs {
		t := Transfer{MessageID: r.MessageID, ContactID: r.ContactID, Group: r.Group, Incoming: r.Incoming}
		m, err := ParseManifest(r.Manifest)
		if err != nil {
			t.State, t.Error = StateFailed, err.Error()
			out = append(out, t)
			continue
		}
		t.Name, t.MIME, t.Size, t.Total = m.Name, m.MIME, m.Size, m.Chunks()
		if !r.Incoming {
			t.State, t.Done = StateSending, t.Total
			t.ChunksServed, t.BytesServed = s.servedBy.get(r.MessageID)
			t.HostState, t.HostError = r.HostState, r.HostError
			t.Holders = s.holders.get(r.MessageID)
			out = append(out, t)
			continue
		}
		s.mu.Lock()
		p, ok := s.prog[r.MessageID]
		s.mu.Unlock()
		if r.Expired {
			t.State = StateExpired
			if ok {
				t.Error = p.err
			}
		} else if ok && p.state != "" {
			t.State, t.Done, t.Error = p.state, p.done, p.err
		} else {
			t.State = StateFetching
			if _, missing, err := Missing(s.ch, m); err == nil {
				t.Done = t.Total - len(missing)
				if len(missing) == 0 {
					t.State = StateComplete
				}
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// Manifest returns the manifest of the file carried by message msgID.
func (s *Service) Manifest(ctx context.Context, msgID string) (*Manifest, error) {
	var r record
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
		r, err = getRecord(tx, msgID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ParseManifest(r.Manifest)
}

// Save writes the file of message msgID to path (which must not exist),
// once every chunk is here (ErrIncomplete before).
func (s *Service) Save(ctx context.Context, msgID, path string) error {
	if _, err := hex.DecodeString(msgID); err != nil {
		return fmt.Errorf("%w: bad message id", ErrNoTransfer)
	}
	m, err := s.Manifest(ctx, msgID)
	if err != nil {
		return err
	}
	err = Save(s.ch, m, path)
	if errors.Is(err, ErrIncomplete) {
		// A chunk went missing since the fetch completed (damaged by a
		// crash): fetch again.
		s.mu.Lock()
		if s.prog[msgID].state == StateComplete {
			delete(s.prog, msgID)
		}
		s.mu.Unlock()
		// Saving asks for the file: one over the automatic limit is
		// fetched now (Request kicks the fetch loop).
		if rerr := s.Request(ctx, msgID); rerr != nil {
			s.kickLoop()
		}
	}
	return err
}
