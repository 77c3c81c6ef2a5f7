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

// postFile posts the file at a path the node reads on a channel we own.
func (s *server) postFile(w http.ResponseWriter, r *http.Request) {
	var req apiclient.PostFileRequest
	if !s.decode(w, r, &req) {
		return
	}
	p, err := s.m.PostFile(r.Context(), r.PathValue("channel"), req.Path, req.Text, req.Alert)
	s.postReply(w, r, p, err)
}

// channelUpload posts an uploaded file on channel c (POST
// /api/v1/files/upload?channel=…[&alert=true]).
func (s *server) channelUpload(w http.ResponseWriter, r *http.Request, c string, up messenger.Upload) {
	q := r.URL.Query()
	p, err := s.m.PostUpload(r.Context(), c, up, q.Get("text"), q.Get("alert") == "true")
	s.postReply(w, r, p, err)
}

func (s *server) postReply(w http.ResponseWriter, r *http.Request, p messenger.ChannelPost, err error) {
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, messenger.ErrUnknownChannel), errors.Is(err, messenger.ErrNotOwner):
			s.failGroup(w, err)
		case errors.Is(err, media.ErrBadManifest), errors.As(err, &mbe):
			writeErr(w, &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()})
		default:
			s.failFile(w, err)
		}
		return
	}
	out := []apiclient.ChannelPost{ToChannelPost(p)}
	s.withPostFiles(r.Context(), []messenger.ChannelPost{p}, out)
	writeJSON(w, http.StatusCreated, out[0])
}

// withPostFiles fills in File for the posts that carry one (known to the
// media service by their hash).
func (s *server) withPostFiles(ctx context.Context, ps []messenger.ChannelPost, out []apiclient.ChannelPost) {
	var ids []string
	for _, p := range ps {
		if p.HasFile {
			ids = append(ids, p.Hash)
		}
	}
	fs := s.fileInfos(ctx, ids)
	for i := range out {
		out[i].File = fs[out[i].Hash]
	}
}
