package wire

import (
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// ChannelBodyMarker starts the body of a channel post that carries a file
// (a ChannelBody follows). A post's text never starts with it (Post
// refuses such a text), so a body without it is plain text, as the posts
// made before files were.
const ChannelBodyMarker = 0x00

// MarshalChannelBody returns a post body: text as is when there is no
// attachment (the format of a text post is unchanged), else the marker
// and a ChannelBody.
func MarshalChannelBody(text string, attachment []byte) []byte {
	if len(attachment) == 0 {
		return []byte(text)
	}
	return append([]byte{ChannelBodyMarker}, Marshal(&wirepb.ChannelBody{Version: Version, Text: text, Attachment: attachment})...)
}

// ParseChannelBody splits a post body into its text and the attachment
// (nil for a text post). It returns ErrMalformed for a marked body that
// does not decode or is over the limits, or for text that is not UTF-8.
func ParseChannelBody(b []byte) (text string, attachment []byte, err error) {
	if len(b) == 0 || b[0] != ChannelBodyMarker {
		if !utf8.Valid(b) {
			return "", nil, ErrMalformed
		}
		return string(b), nil, nil
	}
	var cb wirepb.ChannelBody
	if err := unmarshal(b[1:], MaxTopicMessage, &cb); err != nil {
		return "", nil, err
	}
	if err := checkVersion(cb.Version); err != nil {
		return "", nil, err
	}
	if len(cb.Text) > MaxTextSize || len(cb.Attachment) == 0 || len(cb.Attachment) > MaxAttachmentSize {
		return "", nil, ErrMalformed
	}
	return cb.Text, cb.Attachment, nil
}
