package messenger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// The new device's side of the history transfer (history.go).

// blobHistoryOff, when set, makes this device refuse history offers
// (linked with --no-history).
const blobHistoryOff = "history.off"

// SetHistoryRefused makes this device refuse (true) or take (false) the
// history its other devices offer.
func (m *Messenger) SetHistoryRefused(ctx context.Context, refuse bool) error {
	return m.st.Update(ctx, func(tx *store.Tx) error {
		if refuse {
			return tx.PutBlob(blobHistoryOff, []byte{1})
		}
		return tx.DeleteBlob(blobHistoryOff)
	})
}

// receiveHistory takes a HistoryOffer from peer, a device of our account
// (receiveOwn checked it), inside the receiving transaction: an offer
// (we are the device just linked) or the answer to ours.
func (m *Messenger) receiveHistory(tx *store.Tx, peer string, h *wirepb.HistoryOffer) error {
	id := hex.EncodeToString(h.TransferId)
	if h.Done {
		name := historyBlob + peer
		j, err := getHistoryJob(tx, name)
		if errors.Is(err, store.ErrNotFound) || err == nil && j.ID != id {
			return nil // an answer to an export replaced since
		} else if err != nil {
			return err
		}
		j.State, j.Error = HistoryComplete, ""
		if h.Error != "" {
			j.State, j.Error = HistoryRefused, h.Error
		}
		m.hist.wake() // the export's chunks go
		return putHistoryJob(tx, name, j)
	}
	if old, err := getHistoryJob(tx, historyInBlob); err == nil && old.ID == id {
		return nil // the same offer again
	} else if err == nil && len(old.Manifest) > 0 {
		m.dropExportLater(old) // replaced before it was imported: fetched anew if needed
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	j := historyJob{ID: id, Peer: peer, State: HistoryFetching, Manifest: h.Manifest, Messages: int(h.Messages), Created: m.now().UnixMilli()}
	man, err := media.ParseManifest(h.Manifest)
	switch {
	case err != nil:
		j.State, j.Error, j.Manifest = HistoryFailed, fmt.Sprintf("%v: %v", ErrBadHistory, err), nil
	case m.cfg.Media == nil:
		j.State, j.Error = HistoryFailed, ErrNoMedia.Error()
	case man.Size > m.historyLimits().MaxBytes:
		j.State, j.Error = HistoryFailed, fmt.Sprintf("%v: %d bytes, this device takes at most %d", ErrHistoryTooLarge, man.Size, m.historyLimits().MaxBytes)
	default:
		j.Bytes, j.Chunks = man.Size, man.Chunks()
		if _, err := tx.Blob(blobHistoryOff); err == nil {
			j.State, j.Error = HistoryRefused, "this device was linked without history"
		}
	}
	if j.State != HistoryFetching {
		m.log.Info("historyRefused", "device", shortPeer(peer), "err", j.Error)
	}
	m.hist.wake()
	return putHistoryJob(tx, historyInBlob, j)
}

// workIncoming moves the export we receive on: fetch it, check it, import
// it, and answer the device that offered it.
func (m *Messenger) workIncoming(ctx context.Context, j historyJob) {
	name := historyInBlob
	if j.State == HistoryFetching && m.now().Sub(time.UnixMilli(j.Created)) > historyKeep+24*time.Hour {
		// The offering device keeps its export historyKeep: it is gone.
		if man, err := media.ParseManifest(j.Manifest); err == nil {
			m.cfg.Media.Remove(man)
		}
		j, _ = m.updateJob(ctx, name, j.ID, func(j *historyJob) {
			j.State, j.Manifest, j.Error = HistoryFailed, nil, "the device that offered it did not serve it for 8 days"
		})
	}
	if j.State == HistoryFetching {
		man, err := media.ParseManifest(j.Manifest)
		if err != nil {
			return
		}
		if m.tr != nil {
			m.tr.AddAddrs(j.Peer, m.ownDeviceAddrs(ctx, j.Peer))
		}
		err = media.Fetch(ctx, m.tr, m.cfg.Media.Chunks(), man, []string{j.Peer}, func(done, total int) {
			m.hist.mu.Lock()
			m.hist.prog[j.ID] = [2]int{done, total}
			hook := m.hist.fetchHook
			m.hist.mu.Unlock()
			if hook != nil {
				hook(ctx, done, total)
			}
		})
		if err != nil {
			if ctx.Err() == nil {
				m.log.Info("historyFetchDeferred", "device", shortPeer(j.Peer), "err", err)
				_, _ = m.updateJob(ctx, name, j.ID, m.histBackoff)
			}
			return
		}
		if j, err = m.updateJob(ctx, name, j.ID, func(j *historyJob) { j.State, j.Attempts, j.Next = HistoryImporting, 0, 0 }); err != nil {
			return
		}
	}
	if j.State == HistoryImporting {
		man, err := media.ParseManifest(j.Manifest)
		if err != nil {
			return
		}
		n, err := m.importExport(ctx, j, man)
		if err != nil && ctx.Err() != nil {
			return // resumed at the next start (importing twice is once)
		}
		m.cfg.Media.Remove(man)
		j, err = m.updateJob(ctx, name, j.ID, func(j *historyJob) {
			j.State, j.Imported, j.Manifest = HistoryComplete, n, nil
			if err != nil {
				j.State, j.Error = HistoryFailed, err.Error()
			}
		})
		if err != nil {
			return
		}
		if j.State == HistoryFailed {
			m.log.Warn("historyImportFailed", "device", shortPeer(j.Peer), "err", j.Error)
		} else {
			m.log.Info("historyImported", "device", shortPeer(j.Peer), "messages", n)
		}
	}
	if (j.State == HistoryComplete || j.State == HistoryFailed || j.State == HistoryRefused) && !j.Sent {
		id, _ := hex.DecodeString(j.ID)
		p := &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_History{History: &wirepb.HistoryOffer{
			TransferId: id, Done: true, Error: trimErr(j.Error)}}}
		err := m.sendToOwnDevice(ctx, j.Peer, p)
		_, _ = m.updateJob(ctx, name, j.ID, func(j *historyJob) {
			if err == nil {
				j.Sent, j.Attempts, j.Next = true, 0, 0
			} else {
				m.histBackoff(j)
			}
		})
	}
}

func trimErr(s string) string {
	for len(s) > 200 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// ownDeviceAddrs returns the addresses our device list holds for peer.
func (m *Messenger) ownDeviceAddrs(ctx context.Context, peer string) []string {
	var addrs []string
	_ = m.st.View(ctx, func(tx *store.Tx) error {
		own, err := m.ownOtherDevices(tx)
		for _, d := range own {
			if d.PeerID == peer {
				addrs = d.Addrs
			}
		}
		return err
	})
	return addrs
}

// histMsg is one checked message of an export, with its display key.
type histMsg struct {
	hm  *wirepb.HistoryMessage
	ord float64
}

// readExport decrypts and checks a whole export: every frame, every
// message. Nothing is stored before it passed.
func (m *Messenger) readExport(man *media.Manifest) ([]histMsg, error) {
	if man.Size > m.historyLimits().MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrHistoryTooLarge, man.Size)
	}
	var buf bytes.Buffer
	if err := media.WriteTo(m.cfg.Media.Chunks(), man, &buf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHistory, err)
	}
	if int64(buf.Len()) != man.Size || sha256.Sum256(buf.Bytes()) != man.PlainSHA256 {
		return nil, fmt.Errorf("%w: it does not match its manifest", ErrBadHistory)
	}
	return parseExport(buf.Bytes())
}

// parseExport reads and checks the plaintext of an export: every frame,
// every message, the count its header gives.
func parseExport(plain []byte) ([]histMsg, error) {
	r := bytes.NewReader(plain)
	b, err := wire.ReadFrame(r)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadHistory, err)
	}
	var hdr wirepb.HistoryHeader
	if err := proto.Unmarshal(b, &hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadHistory, err)
	}
	if hdr.Version != wire.HistoryFormat {
		return nil, fmt.Errorf("%w: format %d (this device reads %d: update it)", ErrBadHistory, hdr.Version, wire.HistoryFormat)
	}
	if hdr.Messages > uint64(len(plain)) {
		return nil, fmt.Errorf("%w: %d messages in %d bytes", ErrBadHistory, hdr.Messages, len(plain))
	}
	out := make([]histMsg, 0, hdr.Messages)
	for {
		b, err := wire.ReadFrame(r)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%w: frame: %v", ErrBadHistory, err)
		}
		var batch wirepb.HistoryBatch
		if err := proto.Unmarshal(b, &batch); err != nil {
			return nil, fmt.Errorf("%w: batch: %v", ErrBadHistory, err)
		}
		for _, hm := range batch.Messages {
			if err := checkHistoryMessage(hm); err != nil {
				return nil, fmt.Errorf("%w: message %d: %v", ErrBadHistory, len(out)+1, err)
			}
			if uint64(len(out)) >= hdr.Messages {
				return nil, fmt.Errorf("%w: more messages than its header says", ErrBadHistory)
			}
			out = append(out, histMsg{hm: hm})
		}
	}
	if uint64(len(out)) != hdr.Messages {
		return nil, fmt.Errorf("%w: %d messages, its header says %d", ErrBadHistory, len(out), hdr.Messages)
	}
	// Display keys: the export's order, before every message of this
	// device's own (those all came after the linking; seq >= 1).
	for i := range out {
		out[i].ord = float64(i - len(out) - 1)
	}
	return out, nil
}

// checkHistoryMessage checks one message of an export.
func checkHistoryMessage(hm *wirepb.HistoryMessage) error {
	if hm == nil || len(hm.Body) > wire.MaxTextSize || !utf8.ValidString(hm.Body) || len(hm.Attachment) > wire.MaxAttachmentSize {
		return errors.New("bad body or file")
	}
	if len(hm.Attachment) > 0 {
		if _, err := media.ParseManifest(hm.Attachment); err != nil {
			return err
		}
	}
	switch {
	case hm.Contact != "" && len(hm.Group) == 0:
		if len(hm.MessageId) != wire.MessageIDSize || len(hm.Contact) > 128 {
			return errors.New("bad id")
		}
		switch hm.State {
		case store.StateRead:
		case store.StateQueued, store.StateSent, store.StateDelivered, store.StateFailed:
			if !hm.Outgoing {
				return fmt.Errorf("state %q of a received message", hm.State)
			}
		case store.StateReceived:
			if hm.Outgoing {
				return fmt.Errorf("state %q of a sent message", hm.State)
			}
		default:
			return fmt.Errorf("state %q", hm.State)
		}
	case hm.Contact == "" && len(hm.Group) > 0:
		if len(hm.MessageId) == 0 || len(hm.MessageId) > 64 || len(hm.Group) > 64 || hm.Sender == "" || len(hm.Sender) > 128 {
			return errors.New("bad group message")
		}
	default:
		return errors.New("neither a chat nor a group message")
	}
	return nil
}

// importExport stores the messages of a checked export in batches,
// skipping those held already and those of chats this device lacks; it
// returns how many it stored. Run again (after a crash), it stores what
// is left, in the same order.
func (m *Messenger) importExport(ctx context.Context, j historyJob, man *media.Manifest) (int, error) {
	msgs, err := m.readExport(man)
	if err != nil {
		return 0, err
	}
	imported := 0
	for start := 0; start < len(msgs); start += historyImportBatch {
		part := msgs[start:min(len(msgs), start+historyImportBatch)]
		var events []Event
		err := m.st.Update(ctx, func(tx *store.Tx) error {
			events = events[:0]
			n := 0
			for _, x := range part {
				ev, ok, err := m.importOne(tx, j.Peer, x)
				if err != nil {
					return err
				}
				if ok {
					n++
					events = append(events, ev)
				}
			}
			imported += n
			return nil
		})
		if err != nil {
			return imported, err
		}
		m.unindexed.Store(true)
		for _, e := range events {
			m.emit(e)
		}
		_, _ = m.updateJob(ctx, historyInBlob, j.ID, func(j *historyJob) { j.Imported = imported })
	}
	return imported, nil
}

// importOne stores one message of an export, if its chat is here and it
// is not; a file keeps its manifest, fetched from the device that offered
// the history and the chat's other holders.
func (m *Messenger) importOne(tx *store.Tx, from string, x histMsg) (Event, bool, error) {
	hm := x.hm
	msgID := hex.EncodeToString(hm.MessageId)
	at, sent := timeMs(hm.AtUnixMs), timeMs(hm.SentAtUnixMs)
	if hm.Contact != "" {
		c, err := tx.ContactByAccount(hm.Contact)
		if errors.Is(err, store.ErrNotFound) {
			return Event{}, false, nil
		} else if err != nil {
			return Event{}, false, err
		}
		msg := &store.Message{ID: msgID, ContactID: c.ID, Outgoing: hm.Outgoing, Body: hm.Body, SentAt: sent, At: at, State: hm.State}
		ok, err := tx.ImportMessage(msg, x.ord)
		if err != nil || !ok {
			return Event{}, false, err
		}
		if len(hm.Attachment) > 0 && m.cfg.Media != nil {
			sources := []string{from}
			if card, err := identity.ParseSignedCard(c.Card); err == nil {
				sources = append(sources, card.PeerIDs()...)
			}
			if err := m.cfg.Media.AddIncoming(tx, msgID, c.ID, hm.Attachment, sources); err != nil {
				return Event{}, false, err
			}
		}
		return Event{Type: EventMessage, ContactID: c.ID, MessageID: msgID, State: hm.State}, true, nil
	}
	g, err := tx.Group(hm.Group)
	if errors.Is(err, store.ErrNotFound) {
		return Event{}, false, nil
	} else if err != nil {
		return Event{}, false, err
	}
	gm := &store.GroupMessage{GroupID: g.ID, ID: msgID, Sender: hm.Sender, Body: hm.Body, SentAt: sent, At: at}
	ok, err := tx.ImportGroupMessage(gm, x.ord)
	if err != nil || !ok {
		return Event{}, false, err
	}
	if len(hm.Attachment) > 0 && m.cfg.Media != nil {
		if err := m.cfg.Media.AddIncomingGroup(tx, msgID, hex.EncodeToString(g.ID), hm.Attachment, []string{from}, nil); err != nil {
			return Event{}, false, err
		}
	}
	return Event{Type: EventGroup, Group: hex.EncodeToString(g.ID), MessageID: msgID}, true, nil
}

// timeMs is a unix millisecond time (zero: the zero time).
func timeMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
