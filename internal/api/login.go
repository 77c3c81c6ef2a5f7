package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// The session token never goes on a command line, where other local users
// read it in /proc/*/cmdline: what opens the web app (samizdat open, the
// address samizdat up prints) carries a login code instead, which the page
// exchanges once for the token (POST /api/v1/login). A code works once and
// for LoginCodeTTL only, so a code seen later is worth nothing.

// LoginCodeTTL is how long a login code can be exchanged.
const LoginCodeTTL = 2 * time.Minute

// maxLoginCodes bounds the codes waiting to be used.
const maxLoginCodes = 64

// Logins keeps the one-time login codes of a node's API. One Logins
// serves both the setup handler and the full API of the same node, so a
// code printed while the node waited for its profile still works after.
type Logins struct {
	now   func() time.Time
	mu    sync.Mutex
	codes map[string]time.Time // code → expiry
}

// NewLogins returns an empty code store; now nil means time.Now.
func NewLogins(now func() time.Time) *Logins {
	if now == nil {
		now = time.Now
	}
	return &Logins{now: now, codes: map[string]time.Time{}}
}

// Code returns a fresh one-time login code.
func (l *Logins) Code() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	code := hex.EncodeToString(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for c, exp := range l.codes {
		if now.After(exp) {
			delete(l.codes, c)
		}
	}
	if len(l.codes) >= maxLoginCodes {
		clear(l.codes) // many unused codes: start over rather than grow
	}
	l.codes[code] = now.Add(LoginCodeTTL)
	return code
}

// redeem consumes code and reports whether it was valid.
func (l *Logins) redeem(code string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, exp := range l.codes {
		if subtle.ConstantTimeCompare([]byte(c), []byte(code)) == 1 {
			delete(l.codes, c)
			return !l.now().After(exp)
		}
	}
	return false
}

// login answers POST /api/v1/login {code}: the session token, once per
// code. It needs no token (that is what it hands out) but passes the
// Origin and Host checks like every call.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	var req apiclient.LoginRequest
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := decode(r, &req); err != nil || s.cfg.Logins == nil || !s.cfg.Logins.redeem(req.Code) {
		writeErr(w, &apiclient.Error{Status: http.StatusUnauthorized, Code: apiclient.CodeUnauthorized,
			Message: "this login code is used or expired: run samizdat open for a new one"})
		return
	}
	writeJSON(w, http.StatusOK, apiclient.LoginToken{Token: s.cfg.Token})
}

// loginCode answers POST /api/v1/login/code (token needed): a new
// one-time code, for samizdat open.
func (s *server) loginCode(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Logins == nil {
		writeErr(w, &apiclient.Error{Status: http.StatusNotFound, Code: apiclient.CodeNotFound, Message: "this node offers no login codes"})
		return
	}
	writeJSON(w, http.StatusOK, apiclient.LoginCode{Code: s.cfg.Logins.Code()})
}
