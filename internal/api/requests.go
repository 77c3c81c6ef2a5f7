package api

import (
	"errors"
	"net/http"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// Contact requests (messenger/requests.go): GET /api/v1/requests,
// POST /api/v1/requests/accept, POST /api/v1/requests/decline.

// ToRequest converts a pending request to its API form.
func ToRequest(r messenger.RequestInfo) apiclient.Request {
	out := apiclient.Request{ID: r.ID, Name: r.Name, AccountID: r.AccountID, SafetyNumber: r.SafetyNumber,
		Received: r.Received.UTC(), Bytes: r.Bytes, Messages: make([]apiclient.Message, 0, len(r.Messages))}
	for _, m := range r.Messages {
		out.Messages = append(out.Messages, ToMessage(m))
	}
	return out
}

func (s *server) requests(w http.ResponseWriter, r *http.Request) {
	rs, err := s.m.Requests(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]apiclient.Request, 0, len(rs))
	for _, rq := range rs {
		out = append(out, ToRequest(rq))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) acceptRequest(w http.ResponseWriter, r *http.Request) {
	var req apiclient.RequestAction
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	c, err := s.m.AcceptRequest(r.Context(), req.Request, req.Name)
	if err != nil {
		s.failRequest(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ToContact(c))
}

func (s *server) declineRequest(w http.ResponseWriter, r *http.Request) {
	var req apiclient.RequestAction
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	until, err := s.m.DeclineRequest(r.Context(), req.Request)
	if err != nil {
		s.failRequest(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiclient.Declined{Request: req.Request, Until: until.UTC()})
}

// failRequest is fail, with an unknown request a 404 of its own code.
func (s *server) failRequest(w http.ResponseWriter, err error) {
	if errors.Is(err, messenger.ErrUnknownRequest) {
		writeErr(w, &apiclient.Error{Status: http.StatusNotFound, Code: apiclient.CodeUnknownRequest, Message: err.Error()})
		return
	}
	s.fail(w, err)
}
