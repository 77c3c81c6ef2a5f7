package api

import (
	"errors"
	"net/http"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/messenger"
)

// renameContact answers POST /api/v1/contacts/rename.
func (s *server) renameContact(w http.ResponseWriter, r *http.Request) {
	var req apiclient.RenameContactRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	c, err := s.m.RenameContact(r.Context(), req.Contact, req.Name)
	if errors.Is(err, messenger.ErrBadContactName) {
		writeErr(w, &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()})
		return
	} else if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ToContact(c))
}

// deleteContact answers POST /api/v1/contacts/delete.
func (s *server) deleteContact(w http.ResponseWriter, r *http.Request) {
	var req apiclient.DeleteContactRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.m.DeleteContact(r.Context(), req.Contact); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
