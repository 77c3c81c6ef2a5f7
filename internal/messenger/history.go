package messenger

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Chat history for a device just linked (issue 17), as WhatsApp and
// Signal hand it over: once linking is confirmed (and the user did not
// opt out), the existing device exports its chats — the newest
// HistoryLimits.PerChat messages of each 1:1 chat and group, at most
// HistoryLimits.MaxBytes in all — into a versioned export (wire
// HistoryHeader + HistoryBatch frames), seals it as a file with
// internal/media (per-file key, chunks addressed by hash, resumable), and
// offers it to the new device over their pairwise session
// (Payload.history, a HistoryOffer with the manifest; own devices only).
// The new device fetches the chunks from the offering device (resuming
// from what it holds after a restart of either side), checks the whole
// export before it stores a single message, imports it in batches
// deduplicated by message id (display keys from the export: the order is
// the same whether imported once, twice or in pieces), deletes its copy
// and answers done, upon which the offering device deletes the export.
// Both sides keep their state in a store blob and resume after a restart.

// Defaults of HistoryLimits.
const (
	DefaultHistoryPerChat  = 1000     // newest messages of each chat exported
	DefaultHistoryMaxBytes = 64 << 20 // largest export made or accepted
	// historyRetry is the first wait after a failed offer or answer,
	// doubling up to historyRetryMax: a failure is often a passing one
	// (both devices starting a session at once), as in the outbox.
	historyRetry    = time.Second
	historyRetryMax = 10 * time.Minute
	// historyKeep is how long an export waits for its device to take it.
	historyKeep = 7 * 24 * time.Hour
	// historyImportBatch is how many messages one import transaction
	// stores.
	historyImportBatch = 500
	// historyFrameBudget bounds one batch frame of the export.
	historyFrameBudget = 192 << 10
)

// History transfer states (HistoryTransfer.State).
const (
	HistoryExporting = "exporting" // ours: making the export
	HistoryOffered   = "offered"   // ours: waiting for the device to take it
	HistoryFetching  = "fetching"  // theirs: chunks on their way
	HistoryImporting = "importing" // theirs: checked, being stored
	HistoryComplete  = "complete"  // imported here, or taken by the device
	HistoryFailed    = "failed"    // Error says why; nothing half-imported
	HistoryRefused   = "refused"   // the other device refused it (Error)
)

// Errors of the history transfer.
var (
	// ErrBadHistory is returned (and shown as the transfer's error) for
	// an export that is not well formed: nothing of it is stored.
	ErrBadHistory = errors.New("history export is malformed")
	// ErrHistoryTooLarge is returned for an export over the limit.
	ErrHistoryTooLarge = errors.New("history export is too large")
	// ErrNotOwnDevice is returned for a device our device list does not
	// hold as active: a DeviceSync or history offer from it (or from a
	// contact), SendHistory to it.
	ErrNotOwnDevice = errors.New("not an active device of this account")
)

// HistoryLimits bound what is exported and accepted.
type HistoryLimits struct {
	PerChat  int   // newest messages of each chat (0: DefaultHistoryPerChat)
	MaxBytes int64 // export size (0: DefaultHistoryMaxBytes)
}

// HistoryTransfer is one history transfer, as listed by History.
type HistoryTransfer struct {
	ID       string `json:"id"`
	Device   string `json:"device"`   // the other device's peer id
	Incoming bool   `json:"incoming"` // we receive it (a device just linked)
	State    string `json:"state"`
	Messages int    `json:"messages"`           // in the export
	Imported int    `json:"imported,omitempty"` // stored here (the rest were here already, or chats we lack)
	Bytes    int64  `json:"bytes"`              // size of the export
	Done     int    `json:"chunksDone"`
	Total    int    `json:"chunksTotal"`
	Error    string `json:"error,omitempty"`
}

// historyJob is what the store keeps of a transfer (blob historyBlob +
// peer for ours, historyInBlob for the one we receive).
type historyJob struct {
	ID       string `json:"id"`
	Peer     string `json:"peer"`
	State    string `json:"state"`
	Manifest []byte `json:"manifest,omitempty"` // kept while the chunks are
	Messages int    `json:"messages"`
	Imported int    `json:"imported,omitempty"`
	Bytes    int64  `json:"bytes"`
	Chunks   int    `json:"chunks,omitempty"`
	Error    string `json:"error,omitempty"`
	Created  int64  `json:"created"`
	// Sent: the offer (ours) or the answer (theirs) reached the device.
	Sent     bool  `json:"sent,omitempty"`
	Attempts int   `json:"attempts,omitempty"`
	Next     int64 `json:"next,omitempty"` // unix ms of the next attempt
}

const (
	historyBlob   = "history.out." // + peer id
	historyInBlob = "history.in"
	historyList   = "history.list" // peer ids with an outgoing job
)

// historyState is the messenger's in-memory side of the transfers.
type historyState struct {
	mu      sync.Mutex
	limits  HistoryLimits
	kick    chan struct{}
	running map[string]bool        // jobs being worked on
	prog    map[string][2]int      // fetch progress by job id
	export  func() ([]byte, error) // tests: replaces the export
	nudged  map[string]bool        // devices that connected: their jobs are due
	active  bool                   // a transfer is under way (historyRound)
	// fetchHook (tests) sees the fetch's progress, in its goroutine.
	fetchHook func(ctx context.Context, done, total int)
}

func (h *historyState) init() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kick == nil {
		h.kick = make(chan struct{}, 1)
		h.running, h.prog, h.nudged = map[string]bool{}, map[string][2]int{}, map[string]bool{}
	}
}

func (h *historyState) wake() {
	h.init()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// SetHistoryLimits sets what is exported to a device we link and what
// export we accept (zero values: the defaults).
func (m *Messenger) SetHistoryLimits(l HistoryLimits) {
	m.hist.init()
	m.hist.mu.Lock()
	m.hist.limits = l
	m.hist.mu.Unlock()
}

func (m *Messenger) historyLimits() HistoryLimits {
	m.hist.init()
	m.hist.mu.Lock()
	l := m.hist.limits
	m.hist.mu.Unlock()
	if l.PerChat <= 0 {
		l.PerChat = DefaultHistoryPerChat
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultHistoryMaxBytes
	}
	return l
}

// SendHistory exports our chat history for peer, a device of ours just
// linked, and offers it to it; it returns once the job is recorded (the
// export is made and offered in the background, again after a restart).
func (m *Messenger) SendHistory(ctx context.Context, peer string) error {
	if m.cfg.Media == nil {
		return ErrNoMedia
	}
	id := make([]byte, wire.MessageIDSize)
	if _, err := m.rand.Read(id); err != nil {
		return err
	}
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		own, err := m.ownOtherDevices(tx)
		if err != nil {
			return err
		}
		found := false
		for _, d := range own {
			found = found || d.PeerID == peer
		}
		if !found {
			return fmt.Errorf("%w: %s", ErrNotOwnDevice, shortPeer(peer))
		}
		if old, err := getHistoryJob(tx, historyBlob+peer); err == nil && len(old.Manifest) > 0 {
			m.dropExportLater(old)
		}
		j := historyJob{ID: hex.EncodeToString(id), Peer: peer, State: HistoryExporting, Created: m.now().UnixMilli()}
		if err := putHistoryJob(tx, historyBlob+peer, j); err != nil {
			return err
		}
		return addHistoryPeer(tx, peer)
	})
	if err != nil {
		return err
	}
	m.hist.wake()
	return nil
}

// dropExportLater removes the chunks of an export replaced by a new one.
func (m *Messenger) dropExportLater(j historyJob) {
	if man, err := media.ParseManifest(j.Manifest); err == nil && m.cfg.Media != nil {
		m.cfg.Media.Remove(man)
	}
}

// History lists the history transfers: those we offered to devices we
// linked, and the one we receive (a device just linked).
func (m *Messenger) History(ctx context.Context) ([]HistoryTransfer, error) {
	var jobs []historyJob
	var in *historyJob
	err := m.st.View(ctx, func(tx *store.Tx) error {
		peers, err := historyPeers(tx)
		if err != nil {
			return err
		}
		for _, p := range peers {
			if j, err := getHistoryJob(tx, historyBlob+p); err == nil {
				jobs = append(jobs, j)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if j, err := getHistoryJob(tx, historyInBlob); err == nil {
			in = &j
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []HistoryTransfer{}
	for _, j := range jobs {
		out = append(out, m.historyView(j, false))
	}
	if in != nil {
		out = append(out, m.historyView(*in, true))
	}
	return out, nil
}

func (m *Messenger) historyView(j historyJob, incoming bool) HistoryTransfer {
	t := HistoryTransfer{ID: j.ID, Device: j.Peer, Incoming: incoming, State: j.State, Messages: j.Messages,
		Imported: j.Imported, Bytes: j.Bytes, Error: j.Error}
	t.Total = j.Chunks
	if !incoming || j.State != HistoryFetching {
		t.Done = t.Total
	}
	m.hist.mu.Lock()
	if p, ok := m.hist.prog[j.ID]; ok && incoming && j.State == HistoryFetching {
		t.Done, t.Total = p[0], p[1]
	}
	m.hist.mu.Unlock()
	if j.State == HistoryComplete && incoming {
		t.Done = t.Total
	}
	return t
}

func getHistoryJob(tx *store.Tx, name string) (historyJob, error) {
	var j historyJob
	b, err := tx.Blob(name)
	if err != nil {
		return j, err
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("history job: %w", err)
	}
	return j, nil
}

func putHistoryJob(tx *store.Tx, name string, j historyJob) error {
	b, _ := json.Marshal(j)
	return tx.PutBlob(name, b)
}

func historyPeers(tx *store.Tx) ([]string, error) {
	b, err := tx.Blob(historyList)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

func addHistoryPeer(tx *store.Tx, peer string) error {
	ps, err := historyPeers(tx)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p == peer {
			return nil
		}
	}
	return tx.PutBlob(historyList, []byte(strings.Join(append(ps, peer), " ")))
}

// startHistory resumes the transfers left by the last run and works on
// new ones until ctx ends.
func (m *Messenger) startHistory(ctx context.Context) {
	m.hist.init()
	if m.tr != nil {
		// A device coming online gets its offer (or our answer) at once,
		// not at the next retry.
		m.tr.OnConnected(func(peer string) {
			m.hist.mu.Lock()
			active := m.hist.active
			if active && len(m.hist.nudged) < 64 {
				m.hist.nudged[peer] = true
			}
			m.hist.mu.Unlock()
			if active {
				m.hist.wake()
			}
		})
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.greetOwnDevices(ctx)
		for {
			// A node with no transfer under way costs nothing here: no
			// timer, no transaction until a transfer starts (kick).
			var tick <-chan time.Time
			var t *time.Timer
			if m.historyRound(ctx) {
				t = time.NewTimer(historyRetry / 6)
				tick = t.C
			}
			select {
			case <-ctx.Done():
			case <-m.hist.kick:
			case <-tick:
			}
			if t != nil {
				t.Stop()
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
}

// historyRound starts the work each transfer needs now, one goroutine per
// transfer at a time; it reports whether a transfer is still under way.
func (m *Messenger) historyRound(ctx context.Context) (active bool) {
	defer func() {
		m.hist.mu.Lock()
		m.hist.active = active
		m.hist.mu.Unlock()
	}()
	var jobs []historyJob
	var names []string
	// A write transaction on purpose: one that kicked us has committed.
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		jobs, names = jobs[:0], names[:0]
		peers, err := historyPeers(tx)
		if err != nil {
			return err
		}
		for _, p := range append(peers, "") {
			name := historyBlob + p
			if p == "" {
				name = historyInBlob
			}
			j, err := getHistoryJob(tx, name)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			jobs, names = append(jobs, j), append(names, name)
		}
		return nil
	})
	if err != nil {
		return ctx.Err() == nil
	}
	now := m.now()
	m.hist.mu.Lock()
	nudged := m.hist.nudged
	m.hist.nudged = map[string]bool{}
	m.hist.mu.Unlock()
	for i, j := range jobs {
		name := names[i]
		if nudged[j.Peer] {
			j.Next = 0
		}
		active = active || historyUnderWay(j)
		if !historyDue(j, now) {
			continue
		}
		m.hist.mu.Lock()
		busy := m.hist.running[name]
		m.hist.running[name] = true
		m.hist.mu.Unlock()
		if busy {
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer func() {
				m.hist.mu.Lock()
				delete(m.hist.running, name)
				m.hist.mu.Unlock()
			}()
			if name == historyInBlob {
				m.workIncoming(ctx, j)
			} else {
				m.workOutgoing(ctx, j)
			}
		}()
	}
	return active
}

// historyUnderWay says whether a job is not finished (it will have work
// to do, now or later).
func historyUnderWay(j historyJob) bool {
	switch j.State {
	case HistoryExporting, HistoryOffered, HistoryFetching, HistoryImporting:
		return true
	}
	return !j.Sent || len(j.Manifest) > 0
}

// historyDue says whether a job has work to do now.
func historyDue(j historyJob, now time.Time) bool {
	if j.Next > now.UnixMilli() {
		return false
	}
	switch j.State {
	case HistoryExporting, HistoryFetching, HistoryImporting:
		return true
	case HistoryOffered: // sent: waits for the answer, until it expires
		return !j.Sent || now.Sub(time.UnixMilli(j.Created)) > historyKeep
	default: // finished: the answer (theirs) still to send, or chunks to drop
		return !j.Sent || len(j.Manifest) > 0
	}
}

// updateJob rewrites a job if it is still the one with id (a new link
// may have replaced it).
func (m *Messenger) updateJob(ctx context.Context, name, id string, f func(j *historyJob)) (historyJob, error) {
	var out historyJob
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		j, err := getHistoryJob(tx, name)
		if err != nil {
			return err
		}
		if j.ID != id {
			return store.ErrNotFound
		}
		f(&j)
		out = j
		return putHistoryJob(tx, name, j)
	})
	return out, err
}

// histBackoff schedules the next attempt of a job after a failure.
func (m *Messenger) histBackoff(j *historyJob) {
	j.Attempts++
	d := historyRetry << min(j.Attempts-1, 10)
	j.Next = m.now().Add(min(d, historyRetryMax)).UnixMilli()
}

// workOutgoing moves one of our exports on: make it, offer it, expire it,
// or drop its chunks once the device took it.
func (m *Messenger) workOutgoing(ctx context.Context, j historyJob) {
	name := historyBlob + j.Peer
	switch {
	case j.State == HistoryExporting:
		man, n, err := m.makeExport(ctx)
		if err != nil {
			m.log.Warn("historyExportFailed", "device", shortPeer(j.Peer), "err", err)
			_, _ = m.updateJob(ctx, name, j.ID, func(j *historyJob) { j.State, j.Error, j.Sent = HistoryFailed, err.Error(), true })
			return
		}
		j2, err := m.updateJob(ctx, name, j.ID, func(j *historyJob) {
			j.State, j.Manifest, j.Messages, j.Bytes, j.Chunks = HistoryOffered, man.Marshal(), n, man.Size, man.Chunks()
		})
		if err != nil {
			m.cfg.Media.Remove(man)
			return
		}
		m.log.Info("historyExported", "device", shortPeer(j.Peer), "messages", n, "bytes", man.Size)
		m.offerHistory(ctx, j2)
	case j.State == HistoryOffered && m.now().Sub(time.UnixMilli(j.Created)) > historyKeep:
		m.dropExportLater(j)
		_, _ = m.updateJob(ctx, name, j.ID, func(j *historyJob) {
			j.State, j.Manifest, j.Error, j.Sent = HistoryFailed, nil, "the device did not take it within 7 days", true
		})
	case j.State == HistoryOffered && !j.Sent:
		m.offerHistory(ctx, j)
	case j.State != HistoryOffered && len(j.Manifest) > 0:
		// Taken (or refused) by the device: the export goes.
		m.dropExportLater(j)
		_, _ = m.updateJob(ctx, name, j.ID, func(j *historyJob) { j.Manifest, j.Sent = nil, true })
	}
}

// offerHistory sends the offer of export j to its device.
func (m *Messenger) offerHistory(ctx context.Context, j historyJob) {
	id, _ := hex.DecodeString(j.ID)
	p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_History{History: &wirepb.HistoryOffer{
		TransferId: id, Manifest: j.Manifest, Messages: uint64(j.Messages)}}}
	err := m.sendToOwnDevice(ctx, j.Peer, p)
	if errors.Is(err, ErrNotOwnDevice) {
		// Revoked since: it gets nothing.
		m.dropExportLater(j)
		_, _ = m.updateJob(ctx, historyBlob+j.Peer, j.ID, func(j *historyJob) {
			j.State, j.Manifest, j.Error, j.Sent = HistoryFailed, nil, "the device was revoked", true
		})
		return
	}
	_, _ = m.updateJob(ctx, historyBlob+j.Peer, j.ID, func(j *historyJob) {
		if err == nil {
			j.Sent, j.Attempts, j.Next = true, 0, 0
		} else if j.State == HistoryOffered {
			m.histBackoff(j)
		}
	})
	if err != nil && ctx.Err() == nil {
		m.log.Info("historyOfferDeferred", "device", shortPeer(j.Peer), "err", err)
	}
}

// makeExport writes the export of our chats and seals it into the chunk
// store; it returns its manifest and how many messages it holds.
func (m *Messenger) makeExport(ctx context.Context) (*media.Manifest, int, error) {
	lim := m.historyLimits()
	m.hist.mu.Lock()
	fake := m.hist.export
	m.hist.mu.Unlock()
	var plain []byte
	n := 0
	var err error
	if fake != nil {
		plain, err = fake()
	} else {
		plain, n, err = m.buildExport(ctx, lim)
	}
	if err != nil {
		return nil, 0, err
	}
	man, err := m.cfg.Media.PrepareReader(bytes.NewReader(plain), "history", int64(len(plain)), "application/octet-stream")
	if err != nil {
		return nil, 0, err
	}
	return man, n, nil
}

// buildExport reads our chats into the export format: for each chat, its
// newest lim.PerChat messages in display order; chats are cut (oldest
// messages first) when the export would pass lim.MaxBytes.
func (m *Messenger) buildExport(ctx context.Context, lim HistoryLimits) ([]byte, int, error) {
	var chats [][]*wirepb.HistoryMessage
	err := m.st.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		if err != nil {
			return err
		}
		for _, c := range cs {
			ms, err := tx.NewestMessages(c.ID, lim.PerChat)
			if err != nil {
				return err
			}
			var chat []*wirepb.HistoryMessage
			for _, msg := range ms {
				id, err := hex.DecodeString(msg.ID)
				if err != nil || len(id) != wire.MessageIDSize || !utf8.ValidString(msg.Body) {
					continue
				}
				chat = append(chat, &wirepb.HistoryMessage{MessageId: id, Contact: c.AccountID, Outgoing: msg.Outgoing,
					Body: msg.Body, SentAtUnixMs: msg.SentAt.UnixMilli(), AtUnixMs: msg.At.UnixMilli(), State: msg.State})
			}
			chats = append(chats, chat)
		}
		gs, err := tx.Groups()
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.Gone {
				continue
			}
			ms, err := tx.NewestGroupMessages(g.ID, lim.PerChat)
			if err != nil {
				return err
			}
			var chat []*wirepb.HistoryMessage
			for _, msg := range ms {
				id, err := hex.DecodeString(msg.ID)
				if err != nil || len(id) == 0 || len(id) > 64 || msg.Body == groupCardsBody ||
					!utf8.ValidString(msg.Body) || !utf8.ValidString(msg.Sender) {
					continue // not shown (a batch of members' cards)
				}
				chat = append(chat, &wirepb.HistoryMessage{MessageId: id, Group: g.ID, Sender: msg.Sender,
					Outgoing: msg.Sender == m.acct, Body: msg.Body, SentAtUnixMs: msg.SentAt.UnixMilli(), AtUnixMs: msg.At.UnixMilli()})
			}
			chats = append(chats, chat)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	// Files keep their manifests (the new device fetches them later).
	var ids []string
	for _, chat := range chats {
		for _, hm := range chat {
			ids = append(ids, hex.EncodeToString(hm.MessageId))
		}
	}
	if m.cfg.Media != nil && len(ids) > 0 {
		mans, err := m.cfg.Media.Manifests(ctx, ids)
		if err != nil {
			return nil, 0, err
		}
		for _, chat := range chats {
			for _, hm := range chat {
				if man, ok := mans[hex.EncodeToString(hm.MessageId)]; ok {
					hm.Attachment = man.Marshal()
				}
			}
		}
	}
	// The byte cap: each chat gives up its oldest messages in turn, the
	// longest chat first, until the export fits.
	size := func(hm *wirepb.HistoryMessage) int64 { return int64(len(wire.Marshal(hm))) + 8 }
	var total int64
	for _, chat := range chats {
		for _, hm := range chat {
			total += size(hm)
		}
	}
	for total > lim.MaxBytes-1024 {
		longest := -1
		for i, chat := range chats {
			if len(chat) > 0 && (longest < 0 || len(chat) > len(chats[longest])) {
				longest = i
			}
		}
		if longest < 0 {
			break
		}
		total -= size(chats[longest][0])
		chats[longest] = chats[longest][1:]
	}
	n := 0
	for _, chat := range chats {
		n += len(chat)
	}
	var buf bytes.Buffer
	hdr := &wirepb.HistoryHeader{Version: wire.HistoryFormat, Messages: uint64(n), ExportedAtUnixMs: m.now().UnixMilli()}
	if err := wire.WriteFrame(&buf, wire.Marshal(hdr)); err != nil {
		return nil, 0, err
	}
	batch := &wirepb.HistoryBatch{}
	var batchSize int64
	flush := func() error {
		if len(batch.Messages) == 0 {
			return nil
		}
		err := wire.WriteFrame(&buf, wire.Marshal(batch))
		batch, batchSize = &wirepb.HistoryBatch{}, 0
		return err
	}
	for _, chat := range chats {
		for _, hm := range chat {
			if batchSize+size(hm) > historyFrameBudget {
				if err := flush(); err != nil {
					return nil, 0, err
				}
			}
			batch.Messages = append(batch.Messages, hm)
			batchSize += size(hm)
		}
	}
	if err := flush(); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), n, nil
}

// greetOwnDevices connects, at start, to the account's other devices
// while this device was linked less than historyKeep ago and has had no
// history offer yet: the device that linked it offers the history once
// it sees us online (it cannot know when a new device starts), and one
// linked with --no-history is answered at once.
func (m *Messenger) greetOwnDevices(ctx context.Context) {
	if m.tr == nil || m.cfg.Media == nil {
		return
	}
	var others []identity.Device
	_ = m.st.View(ctx, func(tx *store.Tx) error {
		if _, err := tx.Blob(historyInBlob); err == nil {
			return nil // offered already
		}
		l, err := devices.Load(tx)
		if err != nil {
			return err
		}
		self := l.Find(m.selfPeer())
		if self == nil || self.Device.PeerID != m.selfPeer() || m.now().Sub(self.AddedAt) > historyKeep {
			return nil
		}
		others, err = m.ownOtherDevices(tx)
		return err
	})
	for _, d := range others {
		cctx, cancel := context.WithTimeout(ctx, m.cfg.StreamTimeout)
		_ = m.tr.Connect(cctx, d.PeerID, d.Addrs)
		cancel()
	}
}
