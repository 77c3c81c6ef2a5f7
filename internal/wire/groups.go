package wire

import "github.com/samizdat-im/samizdat/internal/wire/wirepb"

// Limits of group and channel messages.
const (
	// MaxGroupControl is the largest GroupControl accepted (an invitation
	// carries the ops of a group of up to MaxGroupMembers).
	MaxGroupControl = MaxEnvelopeSize - 4<<10
	// MaxGroupMembers is the largest group.
	MaxGroupMembers = 1000
	// MaxHistoryItems bounds a history response.
	MaxHistoryItems = 1000
	// MaxHistoryResponse bounds a history response's size (it is read in
	// one piece from one stream).
	MaxHistoryResponse = 8 << 20
	// MaxTopicMessage bounds a channel post or group envelope on a topic:
	// a text and a file's manifest.
	MaxTopicMessage = MaxTextSize + MaxAttachmentSize + 4<<10
	// MaxGroupName bounds a group or channel name.
	MaxGroupName = 200
	// MaxAddBatch bounds the members one ADD_MANY op adds: at most
	// MaxAddBatch entries of an account id and a name of at most
	// MaxAddedName bytes fit the op size limit.
	MaxAddBatch = 100
	// MaxAddedName bounds the name of an ADD_MANY entry.
	MaxAddedName = 64
	// DeviceTagSize is the size of the device tag a group envelope or
	// control names (GroupEnvelope.device).
	DeviceTagSize = 8
)

// ParseGroupControl checks the group part of a payload.
func parseGroupControl(g *wirepb.GroupControl) error {
	if g == nil || len(g.GroupId) != 32 || len(g.Name) > MaxGroupName || len(g.Ops) > 4*MaxGroupMembers {
		return ErrMalformed
	}
	if len(g.Secret) != 0 && len(g.Secret) != 32 {
		return ErrMalformed
	}
	if len(g.Device) != 0 && len(g.Device) != DeviceTagSize {
		return ErrMalformed
	}
	return nil
}

// ParseChannelInvite decodes the content of a channel link.
func ParseChannelInvite(b []byte) (*wirepb.ChannelInvite, error) {
	var inv wirepb.ChannelInvite
	if err := unmarshal(b, MaxInviteSize, &inv); err != nil {
		return nil, err
	}
	if err := checkVersion(inv.Version); err != nil {
		return nil, err
	}
	if len(inv.OwnerPub) != 32 || (len(inv.BodyKey) != 0 && len(inv.BodyKey) != 32) || len(inv.Name) > MaxGroupName || len(inv.Seeds) > 32 {
		return nil, ErrMalformed
	}
	return &inv, nil
}

// ParseHistoryRequest decodes a history request.
func ParseHistoryRequest(b []byte) (*wirepb.HistoryRequest, error) {
	var r wirepb.HistoryRequest
	if err := unmarshal(b, 1<<10, &r); err != nil {
		return nil, err
	}
	if err := checkVersion(r.Version); err != nil {
		return nil, err
	}
	if r.Topic == "" || r.Limit == 0 {
		return nil, ErrMalformed
	}
	return &r, nil
}

// ParseHistoryResponse decodes a history response.
func ParseHistoryResponse(b []byte) (*wirepb.HistoryResponse, error) {
	var r wirepb.HistoryResponse
	if err := unmarshal(b, MaxHistoryResponse, &r); err != nil {
		return nil, err
	}
	if err := checkVersion(r.Version); err != nil {
		return nil, err
	}
	if len(r.Items) > MaxHistoryItems {
		return nil, ErrTooLarge
	}
	return &r, nil
}

// ParseGroupEnvelope decodes a message published on a group topic.
func ParseGroupEnvelope(b []byte) (*wirepb.GroupEnvelope, error) {
	var e wirepb.GroupEnvelope
	if err := unmarshal(b, MaxTopicMessage, &e); err != nil {
		return nil, err
	}
	if err := checkVersion(e.Version); err != nil {
		return nil, err
	}
	if e.Sender == "" || len(e.Sender) > 128 || len(e.Message) == 0 || (len(e.Device) != 0 && len(e.Device) != DeviceTagSize) {
		return nil, ErrMalformed
	}
	return &e, nil
}

// ParseGroupText decodes the plaintext of a group message.
func ParseGroupText(b []byte) (*wirepb.GroupText, error) {
	var t wirepb.GroupText
	if err := unmarshal(b, MaxTopicMessage, &t); err != nil {
		return nil, err
	}
	if err := checkVersion(t.Version); err != nil {
		return nil, err
	}
	if len(t.MessageId) != MessageIDSize || len(t.Body) > MaxTextSize || len(t.Attachment) > MaxAttachmentSize || len(t.Cards) > MaxAddBatch {
		return nil, ErrMalformed
	}
	for _, c := range t.Cards {
		if len(c) > MaxCardSize {
			return nil, ErrMalformed
		}
	}
	return &t, nil
}

// ParseSignedGroupOp decodes a signed membership op and its inner op (the
// signature is checked by the messenger, which knows the keys).
func ParseSignedGroupOp(b []byte) (*wirepb.SignedGroupOp, *wirepb.GroupOp, error) {
	var s wirepb.SignedGroupOp
	if err := unmarshal(b, MaxCardSize+4<<10, &s); err != nil {
		return nil, nil, err
	}
	var op wirepb.GroupOp
	if err := unmarshal(s.Op, MaxCardSize+2<<10, &op); err != nil {
		return nil, nil, err
	}
	if err := checkVersion(op.Version); err != nil {
		return nil, nil, err
	}
	if len(op.GroupId) != 32 || len(s.Signature) != 64 || len(op.Parents) > 64 || len(op.Name) > MaxGroupName {
		return nil, nil, ErrMalformed
	}
	for _, p := range op.Parents {
		if len(p) != 32 {
			return nil, nil, ErrMalformed
		}
	}
	if (op.Kind == wirepb.GroupOp_KIND_CREATE) != (len(op.Parents) == 0) {
		return nil, nil, ErrMalformed
	}
	if (op.Kind == wirepb.GroupOp_KIND_ADD_MANY) != (len(op.Added) > 0) || len(op.Added) > MaxAddBatch {
		return nil, nil, ErrMalformed
	}
	for _, a := range op.Added {
		if len(a.Account) > 128 || len(a.Name) > MaxAddedName {
			return nil, nil, ErrMalformed
		}
	}
	return &s, &op, nil
}
