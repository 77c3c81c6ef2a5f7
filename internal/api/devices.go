package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/devices"
)

// DevicesBackend links and revokes the account's devices
// (/api/v1/devices...).
type DevicesBackend interface {
	Devices(context.Context) (apiclient.Devices, error)
	StartLink(ctx context.Context, link string) (apiclient.LinkStarted, error)
	ConfirmLink(ctx context.Context, id string, accept bool) (apiclient.Device, error)
	RevokeDevice(ctx context.Context, id string) (apiclient.Device, error)
}

// HistoryLinker is a DevicesBackend that lets the user choose whether a
// device being linked gets the chat history (ConfirmLink: it does).
type HistoryLinker interface {
	ConfirmLinkHistory(ctx context.Context, id string, accept, history bool) (apiclient.Device, error)
}

func (s *server) deviceRoutes(mux *http.ServeMux) {
	if s.cfg.Devices == nil {
		return
	}
	mux.HandleFunc("GET /api/v1/devices", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.cfg.Devices.Devices(r.Context())
		s.reply(w, out, err)
	})
	mux.HandleFunc("POST /api/v1/devices/link", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Link string `json:"link"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			s.deviceFail(w, err)
			return
		}
		out, err := s.cfg.Devices.StartLink(r.Context(), in.Link)
		s.reply(w, out, err)
	})
	mux.HandleFunc("POST /api/v1/devices/link/confirm", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ID      string `json:"id"`
			Accept  bool   `json:"accept"`
			History *bool  `json:"history"` // absent: true
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			s.deviceFail(w, err)
			return
		}
		if hb, ok := s.cfg.Devices.(HistoryLinker); ok && in.History != nil {
			out, err := hb.ConfirmLinkHistory(r.Context(), in.ID, in.Accept, *in.History)
			s.reply(w, out, err)
			return
		}
		out, err := s.cfg.Devices.ConfirmLink(r.Context(), in.ID, in.Accept)
		s.reply(w, out, err)
	})
	mux.HandleFunc("POST /api/v1/devices/revoke", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			s.deviceFail(w, err)
			return
		}
		out, err := s.cfg.Devices.RevokeDevice(r.Context(), in.ID)
		s.reply(w, out, err)
	})
}

func (s *server) reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		s.deviceFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *server) deviceFail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, devices.ErrUnknownDevice), errors.Is(err, devices.ErrNoPending):
		writeErr(w, &apiclient.Error{Status: http.StatusNotFound, Code: apiclient.CodeNotFound, Message: err.Error()})
	case isDeviceUserError(err):
		// What the user gave or did (a bad, stale or used code, codes
		// not confirmed, the device itself): a 400 with the reason, not an
		// "internal error" logged as one.
		writeErr(w, &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()})
	default:
		s.fail(w, err)
	}
}

func isDeviceUserError(err error) bool {
	for _, e := range []error{devices.ErrBadLink, devices.ErrLinkExpired, devices.ErrLinkAuth, devices.ErrLinkUsed,
		devices.ErrLinkRefused, devices.ErrLinkCancelled, devices.ErrWrongDevice, devices.ErrNewDeviceUnreachable, devices.ErrRevokeSelf, devices.ErrAmbiguousDevice,
		devices.ErrTooManyDevices, devices.ErrRevoked} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
