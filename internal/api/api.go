// Package api is samizdat's local HTTP + WebSocket API on 127.0.0.1: what
// the CLI, the web app (internal/web, served at /) and scripts use to
// drive a running node.
// Every request needs the token from the profile's api.json (header
// "Authorization: Bearer <token>"), but POST /api/v1/login, which trades a
// one-time login code for it (login.go); requests carrying an Origin header
// from any other site are refused, so a web page cannot drive the node.
// The API never logs message content or keys. docs/API.md documents it.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/store"
)

// maxBody bounds request bodies (a 64 KiB message plus JSON escaping).
const maxBody = 512 << 10

// Config configures the API handler.
type Config struct {
	Messenger *messenger.Messenger
	Status    func(context.Context) (apiclient.Status, error)
	Token     string
	Addr      string // host:port the API listens on, for the Origin and Host checks
	// Connectivity answers GET /api/v1/connectivity (nil: not offered).
	Connectivity func(context.Context) (apiclient.Connectivity, error)
	Logger       *slog.Logger
	// Logins are the one-time codes POST /api/v1/login exchanges for
	// Token (nil: none).
	Logins *Logins
	// Settings answers /api/v1/settings (nil: not offered).
	Settings SettingsBackend
	// Devices answers /api/v1/devices... (nil: not offered).
	Devices DevicesBackend
}

type server struct {
	cfg Config
	m   *messenger.Messenger
	log *slog.Logger
}

// New returns the API handler.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg, m: cfg.Messenger, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", s.status)
	mux.HandleFunc("GET /api/v1/invite", s.invite)
	mux.HandleFunc("GET /api/v1/contacts", s.contacts)
	mux.HandleFunc("POST /api/v1/contacts", s.addContact)
	mux.HandleFunc("GET /api/v1/messages", s.messages)
	mux.HandleFunc("POST /api/v1/messages", s.send)
	mux.HandleFunc("POST /api/v1/messages/retry", s.retry)
	mux.HandleFunc("GET /api/v1/events", s.events)
	mux.HandleFunc("GET /api/v1/mailboxes", s.mailboxes)
	mux.HandleFunc("GET /api/v1/chats", s.chats)
	mux.HandleFunc("POST /api/v1/messages/read", s.markRead)
	mux.HandleFunc("GET /api/v1/search", s.search)
	mux.HandleFunc("POST /api/v1/contacts/verify", s.verify)
	mux.HandleFunc("POST /api/v1/contacts/rename", s.renameContact) // contactedit.go
	mux.HandleFunc("POST /api/v1/contacts/delete", s.deleteContact) // contactedit.go
	mux.HandleFunc("GET /api/v1/invite/qr", s.inviteQR)
	mux.HandleFunc("GET /api/v1/connectivity", s.connectivity)
	mux.HandleFunc("POST /api/v1/login/code", s.loginCode)
	mux.HandleFunc("GET /api/v1/files", s.files)                      // files.go
	mux.HandleFunc("POST /api/v1/files", s.sendFile)                  // files.go
	mux.HandleFunc("POST /api/v1/files/save", s.saveFile)             // files.go
	s.mediaRoutes(mux)                                                // media.go
	mux.HandleFunc("GET /api/v1/requests", s.requests)                // requests.go
	mux.HandleFunc("POST /api/v1/requests/accept", s.acceptRequest)   // requests.go
	mux.HandleFunc("POST /api/v1/requests/decline", s.declineRequest) // requests.go
	mux.HandleFunc("POST /api/v1/init", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, &apiclient.Error{Status: http.StatusConflict, Code: apiclient.CodeExists, Message: "this node already has a profile"})
	})
	s.groupRoutes(mux)
	s.settingsRoutes(mux)
	s.deviceRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, &apiclient.Error{Status: http.StatusNotFound, Code: apiclient.CodeNotFound, Message: "no such API call: " + r.Method + " " + r.URL.Path})
	})
	return root(cfg.Addr, s.guard(mux))
}

// guard enforces the token and the Origin check on every request.
func (s *server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !s.sameOrigin(o) {
			writeErr(w, &apiclient.Error{Status: http.StatusForbidden, Code: apiclient.CodeForbidden, Message: "requests from other sites are refused"})
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/login" {
			s.login(w, r)
			return
		}
		if !checkToken(r, s.cfg.Token) {
			writeErr(w, &apiclient.Error{Status: http.StatusUnauthorized, Code: apiclient.CodeUnauthorized, Message: "missing or wrong API token (see api.json in the profile)"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimit(r))
		next.ServeHTTP(w, r)
	})
}

func (s *server) sameOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" {
		return false
	}
	_, port, _ := strings.Cut(s.cfg.Addr, ":")
	return u.Host == s.cfg.Addr || u.Host == "localhost:"+port
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, e *apiclient.Error) {
	writeJSON(w, e.Status, e)
}

// fail maps an error to an API error with a user-facing message.
func (s *server) fail(w http.ResponseWriter, err error) {
	e := &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()}
	switch {
	case errors.Is(err, messenger.ErrUnknownContact):
		e.Status, e.Code = http.StatusNotFound, apiclient.CodeUnknownContact
	case errors.Is(err, identity.ErrBadInvite):
		e.Code = apiclient.CodeBadInvite
	case errors.Is(err, messenger.ErrCardUnavailable):
		e.Status, e.Code = http.StatusBadGateway, apiclient.CodeInviteUnreachable
	case errors.Is(err, messenger.ErrCardMismatch):
		e.Code = apiclient.CodeInviteMismatch
	case errors.Is(err, store.ErrExists):
		e.Status, e.Code = http.StatusConflict, apiclient.CodeExists
	case errors.Is(err, store.ErrNotFound):
		e.Status, e.Code = http.StatusNotFound, apiclient.CodeNotFound
	case errors.Is(err, messenger.ErrDeviceRevoked):
		e.Status, e.Code = http.StatusForbidden, apiclient.CodeDeviceRevoked
	case errors.Is(err, store.ErrDiskFull):
		e.Status, e.Code = http.StatusInsufficientStorage, apiclient.CodeInternal
	case errors.Is(err, messenger.ErrEmptyMessage), errors.Is(err, messenger.ErrMessageTooLong),
		errors.Is(err, messenger.ErrSelf), errors.Is(err, messenger.ErrNoKeys), errors.Is(err, messenger.ErrNotFailed):
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			e.Message = "request too large"
			break
		}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) {
			e.Message = "request body is not valid JSON for this call"
			break
		}
		s.log.Error("apiRequestFailed", "err", err)
		e.Status, e.Code, e.Message = http.StatusInternalServerError, apiclient.CodeInternal, "internal error: "+err.Error()
	}
	writeErr(w, e)
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Status(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *server) invite(w http.ResponseWriter, r *http.Request) {
	link, err := s.m.Invite(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	short, err := s.m.ShortInvite(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiclient.Invite{AccountID: s.m.AccountID(), Link: link, Short: short})
}

func (s *server) contacts(w http.ResponseWriter, r *http.Request) {
	cs, err := s.m.Contacts(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]apiclient.Contact, 0, len(cs))
	for _, c := range cs {
		out = append(out, ToContact(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) addContact(w http.ResponseWriter, r *http.Request) {
	var req apiclient.AddContactRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, err)
		return
	}
	c, err := s.m.AddContact(r.Context(), req.Link, req.Name)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ToContact(c))
}

func (s *server) send(w http.ResponseWriter, r *http.Request) {
	var req apiclient.SendRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, err)
		return
	}
	msg, err := s.m.Send(r.Context(), req.Contact, req.Text)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, ToMessage(msg))
}

func (s *server) mailboxes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ToMailboxes(s.m.Mailboxes()))
}

// ToMailboxes converts mailbox statuses to their API form.
func ToMailboxes(ms []messenger.MailboxStatus) []apiclient.MailboxHost {
	out := make([]apiclient.MailboxHost, 0, len(ms))
	for _, m := range ms {
		out = append(out, apiclient.MailboxHost{PeerID: m.PeerID, Addrs: m.Addrs, MailboxID: m.MailboxID,
			LastCheck: m.LastCheck, LastOK: m.LastOK, LastError: m.LastError, Fetched: m.Fetched})
	}
	return out
}

func (s *server) retry(w http.ResponseWriter, r *http.Request) {
	var req apiclient.RetryRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, err)
		return
	}
	msg, err := s.m.Retry(r.Context(), req.Contact, req.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ToMessage(msg))
}

func (s *server) messages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("before") {
		s.page(w, r)
		return
	}
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	c, msgs, err := s.m.Messages(r.Context(), q.Get("contact"), after, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := apiclient.Conversation{Contact: ToContact(c), Messages: make([]apiclient.Message, 0, len(msgs))}
	for _, m := range msgs {
		out.Messages = append(out.Messages, ToMessage(m))
	}
	s.withFiles(r.Context(), out.Messages)
	writeJSON(w, http.StatusOK, out)
}

// EventSubscribed is the first event of every events stream: the
// subscription is in place.
const EventSubscribed = "subscribed"

func (s *server) events(w http.ResponseWriter, r *http.Request) {
	_, port, _ := strings.Cut(s.cfg.Addr, ":")
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{s.cfg.Addr, "localhost:" + port}, Subprotocols: []string{wsProtocol}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ch, stop := s.m.Subscribe()
	defer stop()
	ctx := conn.CloseRead(r.Context())
	// From here on nothing is missed: a client that listed before this
	// event lists again on it (see docs/API.md).
	hello, _ := json.Marshal(apiclient.Event{Type: EventSubscribed})
	if err := conn.Write(ctx, websocket.MessageText, hello); err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-ch:
			if !ok {
				conn.Close(websocket.StatusGoingAway, "node stopping")
				return
			}
			b, _ := json.Marshal(apiclient.Event{Type: e.Type, ContactID: e.ContactID, MessageID: e.MessageID, State: e.State, Channel: e.Channel, Group: e.Group, Alert: e.Alert})
			if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
				return
			}
		}
	}
}

// ToContact converts a messenger contact to its API form.
func ToContact(c messenger.ContactInfo) apiclient.Contact {
	return apiclient.Contact{ID: c.ID, Name: c.Name, AccountID: c.AccountID, PeerID: c.PeerID, Addrs: c.Addrs, Verified: c.Verified, SafetyNumber: c.SafetyNumber}
}

// ToMessage converts a stored message to its API form.
func ToMessage(m store.Message) apiclient.Message {
	return apiclient.Message{Seq: m.Seq, ID: m.ID, ContactID: m.ContactID, Outgoing: m.Outgoing, Body: m.Body, SentAt: m.SentAt.UTC(), At: m.At.UTC(), State: m.State, Ord: m.Ord}
}
