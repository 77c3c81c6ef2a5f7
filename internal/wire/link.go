package wire

import "google.golang.org/protobuf/proto"

// MaxLinkFrameSize bounds a frame of /samizdat/link/1: a provision carries
// the account identity and the state a new device starts from.
const MaxLinkFrameSize = 4 << 20

// ParseLink decodes a link message (a wirepb.Link* message) into m and
// checks its version.
func ParseLink(b []byte, m interface {
	proto.Message
	GetVersion() uint32
}) error {
	if err := unmarshal(b, MaxLinkFrameSize, m); err != nil {
		return err
	}
	return checkVersion(m.GetVersion())
}
