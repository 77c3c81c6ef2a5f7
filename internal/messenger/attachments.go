package messenger

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// ErrNoMedia is returned by the file methods when the node runs without
// attachments (Config.Media is nil).
var ErrNoMedia = errors.New("this node does not carry files")

func (m *Messenger) startMedia(ctx context.Context) {
	if m.cfg.Media != nil {
		m.cfg.Media.Start(ctx)
		m.startMediaHosts(ctx)
		m.startGroupHolders(ctx)
	}
}

func (m *Messenger) stopMedia() {
	if m.cfg.Media != nil {
		m.cfg.Media.Close()
	}
}

// SendFile seals the file at path into the chunk store and sends a message
// to the contact ref carrying its manifest (and text as the caption, which
// may be empty). The contact then fetches the chunks from us over
// /samizdat/blob/2, on streams of their own, so no text waits behind a
// file. It returns once the message is queued.
func (m *Messenger) SendFile(ctx context.Context, ref, path, text string) (store.Message, error) {
	if err := m.revokedErr(); err != nil {
		return store.Message{}, err
	}
	svc := m.cfg.Media
	if svc == nil {
		return store.Message{}, ErrNoMedia
	}
	if len(text) > wire.MaxTextSize {
		return store.Message{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLong, len(text), wire.MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return store.Message{}, errors.New("message is not valid UTF-8 text")
	}
	if _, err := m.Contact(ctx, ref); err != nil {
		return store.Message{}, err
	}
	man, err := svc.Prepare(path)
	if err != nil {
		return store.Message{}, err
	}
	return m.sendManifest(ctx, ref, text, man)
}

// sendManifest sends a message carrying the manifest of a file already
// sealed into the chunk store.
func (m *Messenger) sendManifest(ctx context.Context, ref, text string, man *media.Manifest) (store.Message, error) {
	svc := m.cfg.Media
	enc := man.Marshal()
	if len(enc) > wire.MaxAttachmentSize {
		svc.Discard(man)
		return store.Message{}, fmt.Errorf("file manifest of %d bytes is too large", len(enc))
	}
	m.awaitClaim(ctx, ref)
	req := &sendReq{ref: ref, text: text, attachment: enc, done: make(chan struct{})}
	select {
	case m.sendq <- req:
	case <-m.closed:
		svc.Discard(man)
		return store.Message{}, ErrClosed
	case <-ctx.Done():
		svc.Discard(man)
		return store.Message{}, ctx.Err()
	}
	<-req.done
	if req.err != nil {
		if req.msg.ID == "" { // not stored: nobody will ask for the file
			svc.Discard(man)
		}
		return req.msg, req.err
	}
	if err := svc.AddOutgoing(ctx, req.msg.ID, req.msg.ContactID, man); err != nil {
		return req.msg, err
	}
	m.kickDeposits()
	return req.msg, nil
}

// receivedAttachment records the file of a message being stored, in the
// same transaction; the chunks are fetched from the device that sent it
// once the transaction commits.
func (m *Messenger) receivedAttachment(tx *store.Tx, c *store.Contact, msgID, peer string, manifest []byte) error {
	if len(manifest) == 0 || m.cfg.Media == nil {
		return nil
	}
	var sources []string
	if peer != "" {
		sources = append(sources, peer)
	}
	if c.PeerID != "" && c.PeerID != peer {
		sources = append(sources, c.PeerID)
	}
	if m.tr != nil && len(c.Addrs) > 0 {
		m.tr.AddAddrs(c.PeerID, c.Addrs)
	}
	return m.cfg.Media.AddIncoming(tx, msgID, c.ID, manifest, sources)
}

// Transfers lists the files sent and received, with their progress.
func (m *Messenger) Transfers(ctx context.Context) ([]media.Transfer, error) {
	if m.cfg.Media == nil {
		return nil, ErrNoMedia
	}
	return m.cfg.Media.Transfers(ctx)
}

// SaveFile writes the file of message msgID to path, which must not exist
// yet; media.ErrIncomplete while chunks are still on their way.
func (m *Messenger) SaveFile(ctx context.Context, msgID, path string) error {
	if m.cfg.Media == nil {
		return ErrNoMedia
	}
	return m.cfg.Media.Save(ctx, msgID, path)
}
