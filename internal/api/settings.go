package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// SettingsBackend keeps the user's settings (GET/PUT /api/v1/settings).
type SettingsBackend interface {
	Settings(context.Context) (apiclient.Settings, error)
	SaveSettings(context.Context, apiclient.Settings) error
}

func (s *server) settingsRoutes(mux *http.ServeMux) {
	if s.cfg.Settings == nil {
		return
	}
	mux.HandleFunc("GET /api/v1/settings", s.getSettings)
	mux.HandleFunc("PUT /api/v1/settings", s.putSettings)
}

func (s *server) getSettings(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Settings.Settings(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// putSettings decodes the body over the current settings: fields left out
// keep their value ("muted", when given, replaces the whole map).
func (s *server) putSettings(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Settings.Settings(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	var in struct {
		apiclient.Settings
		Muted *map[string]time.Time `json:"muted"`
	}
	in.Settings = st
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		s.fail(w, err)
		return
	}
	st = in.Settings
	if in.Muted != nil {
		st.Muted = *in.Muted
	}
	if err := st.Normalize(time.Now()); err != nil {
		writeErr(w, &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()})
		return
	}
	if err := s.cfg.Settings.SaveSettings(r.Context(), st); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
