package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// groupUpload sends an uploaded file to group g (POST
// /api/v1/files/upload?group=…): sealed once, one group message.
func (s *server) groupUpload(w http.ResponseWriter, r *http.Request, g string, up messenger.Upload) {
	m, err := s.m.GroupSendUpload(r.Context(), g, up, r.URL.Query().Get("text"))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, messenger.ErrUnknownGroup), errors.Is(err, messenger.ErrNotMember):
			s.failGroup(w, err)
		case errors.Is(err, media.ErrBadManifest), errors.As(err, &mbe):
			writeErr(w, &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()})
		default:
			s.failFile(w, err)
		}
		return
	}
	out := []apiclient.GroupMessage{ToGroupMessage(m)}
	s.withGroupFiles(r.Context(), out)
	writeJSON(w, http.StatusCreated, out[0])
}

// withGroupFiles fills in File for the group messages that carry one.
func (s *server) withGroupFiles(ctx context.Context, msgs []apiclient.GroupMessage) {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	fs := s.fileInfos(ctx, ids)
	for i := range msgs {
		msgs[i].File = fs[msgs[i].ID]
	}
}
