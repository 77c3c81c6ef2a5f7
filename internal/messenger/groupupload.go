package messenger

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/wire"
)

// GroupSendUpload is GroupSendFile for a file streamed to the node (the
// web app's attach, paste, drop and voice notes in a group): the file is
// sealed once and its manifest goes out in one group message, whatever
// the group's size; the members fetch the chunks from us and from each
// other (receivedGroupFile).
func (m *Messenger) GroupSendUpload(ctx context.Context, ref string, up Upload, text string) (GroupMessage, error) {
	svc := m.cfg.Media
	if svc == nil {
		return GroupMessage{}, ErrNoMedia
	}
	if len(text) > wire.MaxTextSize {
		return GroupMessage{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMessageTooLong, len(text), wire.MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return GroupMessage{}, errors.New("message is not valid UTF-8 text")
	}
	if up.Meta.DurationMS < 0 || up.Meta.DurationMS > media.MaxDuration || len(up.Meta.Waveform) > media.MaxWaveform {
		return GroupMessage{}, fmt.Errorf("%w: duration or waveform out of range", media.ErrBadManifest)
	}
	gi, err := m.Group(ctx, ref)
	if err != nil {
		return GroupMessage{}, err
	}
	man, err := svc.PrepareReader(up.Body, up.Name, up.Size, up.MIME)
	if err != nil {
		return GroupMessage{}, err
	}
	man.DurationMS, man.Waveform = up.Meta.DurationMS, up.Meta.Waveform
	enc := man.Marshal()
	if len(enc) > wire.MaxAttachmentSize {
		svc.Discard(man)
		return GroupMessage{}, fmt.Errorf("file manifest of %d bytes is too large", len(enc))
	}
	gm, err := m.groupSend(ctx, ref, text, enc)
	if err != nil {
		if gm.ID == "" { // not stored: nobody will ask for the file
			svc.Discard(man)
		}
		return gm, err
	}
	err = svc.AddOutgoingGroup(ctx, gm.ID, gi.ID, man)
	m.kickGroupHolders()
	return gm, err
}
