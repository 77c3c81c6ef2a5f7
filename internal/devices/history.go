package devices

import "context"

// HistorySender is implemented by an Account that hands its chat history
// to a device just linked (the messenger: an export sealed as a file and
// offered over the pairwise session of the two devices).
type HistorySender interface {
	SendHistory(ctx context.Context, peer string) error
}

// ConfirmOptions are the choices of ConfirmWith.
type ConfirmOptions struct {
	// NoHistory: the new device gets the account, contacts and groups,
	// but not the messages (the default hands them over).
	NoHistory bool
}

// ConfirmWith is Confirm with choices: once the device is linked, its
// chat history is offered to it unless o.NoHistory (and the account can
// send history). A history that cannot be offered does not undo the link.
func (s *Service) ConfirmWith(ctx context.Context, id string, ok bool, o ConfirmOptions) (Info, error) {
	info, err := s.confirm(ctx, id, ok)
	if err != nil || !ok || o.NoHistory {
		return info, err
	}
	if hs, can := s.cfg.Account.(HistorySender); can {
		if herr := hs.SendHistory(ctx, info.ID); herr != nil {
			s.log.Info("historyNotOffered", "device", short(info.ID), "err", herr)
		}
	}
	return info, nil
}
