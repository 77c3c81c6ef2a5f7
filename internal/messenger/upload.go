package messenger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// EventFile says an incoming file's transfer completed or stopped
// (MessageID, ContactID, State: media.StateComplete or StateFailed).
const EventFile = "file"

// FileChanged announces a transfer's new state to subscribers (the media
// service's Config.OnChange).
func (m *Messenger) FileChanged(msgID string, contactID int64, state string) {
	m.emit(Event{Type: EventFile, ContactID: contactID, MessageID: msgID, State: state})
}

// FileMeta is what the uploader says about a file beyond its bytes: a
// voice note's length and waveform summary (display only).
type FileMeta struct {
	DurationMS int
	Waveform   []byte
}

// Upload is a file sent from the web app: its bytes come from a reader
// of exactly Size bytes, not from the node's disk.
type Upload struct {
	Name string // base name
	MIME string // as the browser says, "" to guess
	Size int64
	Body io.Reader
	Meta FileMeta
}

// SendUpload is SendFile for a file streamed to the node (the web app's
// attach, paste, drop and voice notes).
func (m *Messenger) SendUpload(ctx context.Context, ref string, up Upload, text string) (store.Message, error) {
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
	if up.Meta.DurationMS < 0 || up.Meta.DurationMS > media.MaxDuration || len(up.Meta.Waveform) > media.MaxWaveform {
		return store.Message{}, fmt.Errorf("%w: duration or waveform out of range", media.ErrBadManifest)
	}
	if _, err := m.Contact(ctx, ref); err != nil {
		return store.Message{}, err
	}
	man, err := svc.PrepareReader(up.Body, up.Name, up.Size, up.MIME)
	if err != nil {
		return store.Message{}, err
	}
	man.DurationMS, man.Waveform = up.Meta.DurationMS, up.Meta.Waveform
	return m.sendManifest(ctx, ref, text, man)
}

// Media is the node's attachment service (nil when it carries no files).
func (m *Messenger) Media() *media.Service { return m.cfg.Media }
