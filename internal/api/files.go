package api

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// failFile answers a files call that failed: the user's mistakes (no such
// file, too large, not complete yet, target exists) as 4xx, others as
// fail does.
func (s *server) failFile(w http.ResponseWriter, err error) {
	e := &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, media.ErrTooLarge), errors.Is(err, media.ErrImageTooLarge), errors.Is(err, media.ErrBadImage),
		errors.Is(err, media.ErrSizeChanged), errors.Is(err, media.ErrBadManifest), errors.Is(err, messenger.ErrNoMedia):
	case errors.Is(err, media.ErrNoTransfer):
		e.Status, e.Code = http.StatusNotFound, apiclient.CodeNotFound
	case errors.Is(err, media.ErrIncomplete), errors.Is(err, media.ErrExists):
		e.Status, e.Code = http.StatusConflict, apiclient.CodeExists
	default:
		s.fail(w, err)
		return
	}
	writeErr(w, e)
}

func (s *server) files(w http.ResponseWriter, r *http.Request) {
	ts, err := s.m.Transfers(r.Context())
	if err != nil {
		s.failFile(w, err)
		return
	}
	out := make([]apiclient.Transfer, 0, len(ts))
	for _, t := range ts {
		out = append(out, transferOut(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) sendFile(w http.ResponseWriter, r *http.Request) {
	var req apiclient.SendFileRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, err)
		return
	}
	msg, err := s.m.SendFile(r.Context(), req.Contact, req.Path, req.Text)
	if err != nil {
		s.failFile(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ToMessage(msg))
}

func (s *server) saveFile(w http.ResponseWriter, r *http.Request) {
	var req apiclient.SaveFileRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.m.SaveFile(r.Context(), req.MessageID, req.Path); err != nil {
		s.failFile(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *server) groupSendFile(w http.ResponseWriter, r *http.Request) {
	var req apiclient.GroupFileRequest
	if !s.decode(w, r, &req) {
		return
	}
	m, err := s.m.GroupSendFile(r.Context(), r.PathValue("group"), req.Path, req.Text)
	switch {
	case errors.Is(err, messenger.ErrUnknownGroup), errors.Is(err, messenger.ErrNotMember):
		s.failGroup(w, err)
		return
	case err != nil:
		s.failFile(w, err)
		return
	}
	out := []apiclient.GroupMessage{ToGroupMessage(m)}
	s.withGroupFiles(r.Context(), out)
	writeJSON(w, http.StatusCreated, out[0])
}

// transferOut is the API's form of a transfer.
func transferOut(t media.Transfer) apiclient.Transfer {
	out := apiclient.Transfer{MessageID: t.MessageID, ContactID: t.ContactID, Group: t.Group, Incoming: t.Incoming,
		Name: t.Name, MIME: t.MIME, Size: t.Size, Done: t.Done, Total: t.Total, State: t.State, Error: t.Error,
		ChunksServed: t.ChunksServed, BytesServed: t.BytesServed, HostState: t.HostState, HostError: t.HostError}
	if h := t.Holders; h != nil {
		out.Holders = &apiclient.FileHolders{Members: h.Members, Done: h.Done, Fetching: h.Fetching, Offline: h.Offline}
	}
	return out
}
