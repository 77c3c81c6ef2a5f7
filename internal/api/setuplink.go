package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// SetupLinker links a node without a profile as a new device of an
// existing account (issue 17), for the web app's "link this device".
type SetupLinker interface {
	Start(ctx context.Context, req apiclient.SetupLinkRequest) (apiclient.SetupLink, error)
	State() apiclient.SetupLink
	Confirm(ctx context.Context, accept bool) (apiclient.SetupLink, error)
}

func setupLinkRoutes(mux *http.ServeMux, l SetupLinker, answerErr func(http.ResponseWriter, error)) {
	if l == nil {
		return
	}
	mux.HandleFunc("POST /api/v1/setup/link", func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.SetupLinkRequest
		if err := decode(r, &req); err != nil {
			answerErr(w, errors.New("request body is not valid JSON for this call"))
			return
		}
		st, err := l.Start(r.Context(), req)
		if err != nil {
			answerErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /api/v1/setup/link", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, l.State())
	})
	mux.HandleFunc("POST /api/v1/setup/link/confirm", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Accept bool `json:"accept"`
		}
		if err := decode(r, &req); err != nil {
			answerErr(w, errors.New("request body is not valid JSON for this call"))
			return
		}
		st, err := l.Confirm(r.Context(), req.Accept)
		if err != nil {
			answerErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
}
