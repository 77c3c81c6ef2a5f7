package wire

import "github.com/samizdat-im/samizdat/internal/wire/wirepb"

// History transfer between one's own devices (issue 17): the offer rides
// in a Payload; the export it names is a file of frames (HistoryHeader,
// then HistoryBatch frames).

// HistoryFormat is the version of the export format (HistoryHeader).
const HistoryFormat = 1

// checkHistoryOffer checks the shape of a HistoryOffer: an id, and a
// manifest unless it is the new device's answer.
func checkHistoryOffer(h *wirepb.HistoryOffer) error {
	if h == nil || len(h.TransferId) != MessageIDSize || len(h.Manifest) > MaxAttachmentSize || len(h.Error) > 200 {
		return ErrMalformed
	}
	if !h.Done && len(h.Manifest) == 0 {
		return ErrMalformed
	}
	return nil
}
