package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/web"
)

// wsProtocol is the WebSocket subprotocol of GET /api/v1/events. A browser
// cannot set an Authorization header on a WebSocket, so it offers the
// token as a second subprotocol, bearerProtocol+token.
const (
	wsProtocol     = "samizdat.v1"
	bearerProtocol = "samizdat.bearer."
)

// Search and paging bounds.
const (
	maxSearchHits = 200
	maxPage       = 500
	qrSize        = 320
)

// root serves the API under /api/ (token and Origin checked) and the web
// app everywhere else, behind a Host check against DNS rebinding: a page
// of another site whose name resolves to 127.0.0.1 must not reach us.
func root(addr string, api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/", web.Handler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr != "" && !okHost(addr, r.Host) {
			writeErr(w, &apiclient.Error{Status: http.StatusForbidden, Code: apiclient.CodeForbidden, Message: "unexpected Host header: open the address samizdat printed"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func okHost(addr, host string) bool {
	_, port, _ := strings.Cut(addr, ":")
	return host == addr || host == "localhost:"+port
}

// token returns the token a request carries: the Authorization header, or
// for a WebSocket from a browser, the bearer subprotocol.
func requestToken(r *http.Request) (string, bool) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return tok, true
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if tok, ok := strings.CutPrefix(strings.TrimSpace(p), bearerProtocol); ok {
				return tok, true
			}
		}
	}
	return "", false
}

func checkToken(r *http.Request, want string) bool {
	tok, ok := requestToken(r)
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

func decode(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}

func (s *server) chats(w http.ResponseWriter, r *http.Request) {
	cs, err := s.m.Chats(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]apiclient.Chat, 0, len(cs))
	for _, c := range cs {
		ch := apiclient.Chat{Contact: ToContact(c.Contact), Unread: c.Unread}
		if c.Last != nil {
			m := ToMessage(*c.Last)
			ch.Last = &m
		}
		out = append(out, ch)
	}
	s.withFileLabels(r.Context(), out)
	writeJSON(w, http.StatusOK, out)
}

// page answers GET /api/v1/messages?before=…: a conversation read from
// its end (before=latest: the newest messages).
func (s *server) page(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var before int64
	if b := q.Get("before"); b != "latest" {
		var err error
		if before, err = strconv.ParseInt(b, 10, 64); err != nil || before <= 0 {
			s.fail(w, errors.New("before must be a message seq or \"latest\""))
			return
		}
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > maxPage {
		limit = 100
	}
	c, msgs, more, err := s.m.MessagesBefore(r.Context(), q.Get("contact"), before, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := apiclient.Page{Contact: ToContact(c), Messages: make([]apiclient.Message, 0, len(msgs)), More: more}
	for _, m := range msgs {
		out.Messages = append(out.Messages, ToMessage(m))
	}
	s.withFiles(r.Context(), out.Messages)
	writeJSON(w, http.StatusOK, out)
}

func (s *server) markRead(w http.ResponseWriter, r *http.Request) {
	var req apiclient.ReadRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	n, err := s.m.MarkRead(r.Context(), req.Contact, req.UpTo)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiclient.ReadResult{Marked: n})
}

func (s *server) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > maxSearchHits {
		limit = 50
	}
	ms, err := s.m.Search(r.Context(), q.Get("q"), limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	cs, err := s.m.Contacts(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	names := make(map[int64]string, len(cs))
	for _, c := range cs {
		names[c.ID] = c.Name
	}
	out := make([]apiclient.SearchHit, 0, len(ms))
	for _, m := range ms {
		out = append(out, apiclient.SearchHit{Message: ToMessage(m), ContactName: names[m.ContactID]})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) verify(w http.ResponseWriter, r *http.Request) {
	var req apiclient.VerifyRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, err)
		return
	}
	c, err := s.m.SetVerified(r.Context(), req.Contact, req.Verified)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ToContact(c))
}

// inviteQR answers GET /api/v1/invite/qr with a fresh invite as a PNG:
// the long link, or with ?form=short a short one (upper case, which QR's
// alphanumeric mode packs into a smaller code). ?link= draws the short
// link given (one the app got from GET /api/v1/invite) instead of a new one.
func (s *server) inviteQR(w http.ResponseWriter, r *http.Request) {
	var link string
	var err error
	switch q := r.URL.Query(); q.Get("form") {
	case "", "long":
		link, err = s.m.Invite(r.Context())
	case "short":
		if l := q.Get("link"); l != "" {
			// Only a link of ours: the endpoint draws invites, not any text.
			si, perr := identity.ParseShortInvite(l)
			if perr != nil || si.AccountID() != s.m.AccountID() {
				s.fail(w, fmt.Errorf("%w: not a short invite of this account", identity.ErrBadInvite))
				return
			}
			link = l
		} else {
			link, err = s.m.ShortInvite(r.Context())
		}
		link = identity.ShortInviteQRText(link)
	default:
		writeErr(w, &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: "form must be long or short"})
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	png, err := identity.QRPNG(link, qrSize)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(png)
}

func (s *server) connectivity(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Connectivity == nil {
		s.fail(w, errors.New("connectivity is not known on this node"))
		return
	}
	c, err := s.cfg.Connectivity(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// SetupConfig configures the handler of a node waiting for its profile.
type SetupConfig struct {
	Token  string
	Addr   string
	Logins *Logins // as Config.Logins
	// State returns apiclient.SetupNew or SetupLocked.
	State func() string
	// Init creates the profile and starts the node; Unlock starts it with
	// a passphrase. Both return the running node's status.
	Init   func(context.Context, apiclient.InitRequest) (apiclient.Status, error)
	Unlock func(ctx context.Context, passphrase string) (apiclient.Status, error)
	// Fail maps Init and Unlock errors to API errors (nil: bad_request).
	Fail func(error) *apiclient.Error
	// Link links this node as a new device of an account (nil: not
	// offered): /api/v1/setup/link (setuplink.go).
	Link SetupLinker
}

// NewSetup returns the handler of a node without an open profile: the web
// app (for onboarding), GET /api/v1/status saying what is missing, and
// POST /api/v1/init or /api/v1/unlock; every other call is refused with
// not_ready. The token and Origin checks are those of New.
func NewSetup(cfg SetupConfig) http.Handler {
	s := &server{cfg: Config{Token: cfg.Token, Addr: cfg.Addr, Logins: cfg.Logins}, log: slog.New(slog.DiscardHandler)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/login/code", s.loginCode)
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, apiclient.Status{Setup: cfg.State(), Addrs: []string{}, ConnectedPeers: []string{}, Outbox: map[string]int{}})
	})
	answer := func(w http.ResponseWriter, st apiclient.Status, err error) {
		if err != nil {
			e := &apiclient.Error{Status: http.StatusBadRequest, Code: apiclient.CodeBadRequest, Message: err.Error()}
			if cfg.Fail != nil {
				if fe := cfg.Fail(err); fe != nil {
					e = fe
				}
			}
			writeErr(w, e)
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
	mux.HandleFunc("POST /api/v1/init", func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.InitRequest
		if err := decode(r, &req); err != nil {
			answer(w, apiclient.Status{}, errors.New("request body is not valid JSON for this call"))
			return
		}
		st, err := cfg.Init(r.Context(), req)
		answer(w, st, err)
	})
	mux.HandleFunc("POST /api/v1/unlock", func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.UnlockRequest
		if err := decode(r, &req); err != nil {
			answer(w, apiclient.Status{}, errors.New("request body is not valid JSON for this call"))
			return
		}
		st, err := cfg.Unlock(r.Context(), req.Passphrase)
		answer(w, st, err)
	})
	setupLinkRoutes(mux, cfg.Link, func(w http.ResponseWriter, err error) { answer(w, apiclient.Status{}, err) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, &apiclient.Error{Status: http.StatusServiceUnavailable, Code: apiclient.CodeNotReady,
			Message: "the profile is not open yet: finish setting it up in the web app (samizdat open) or run samizdat init"})
	})
	return root(cfg.Addr, s.guard(mux))
}
