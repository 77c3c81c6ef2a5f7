package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samizdat-im/samizdat/internal/api"
	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// WebFile remembers the local API's address between runs (0600), so that
// a web app left open in a browser finds the node again after a restart on
// the same origin. The token is not kept: every run has a fresh one, so a
// web app open across a restart needs a new link (samizdat open).
const WebFile = "web.json"

// LoginURL is the one-click address of the web app: it carries a one-time
// login code (api.Logins) in the fragment, which browsers never send to a
// server or in a Referer; the page trades it for the session token. The
// token itself is never put in an address, so it is on no command line.
func LoginURL(addr, code string) string {
	return "http://" + addr + "/#login=" + code
}

// apiHandoff is the local API server a waiting node already runs, handed
// to Start so that the web app keeps its address and token.
type apiHandoff struct {
	ln     net.Listener
	srv    *http.Server
	swap   *swapHandler
	token  string
	logins *api.Logins
}

type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }
func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// listenAPI opens the local API's listener and picks a fresh token. With
// the default address it first tries the address of the last run (see
// WebFile).
func listenAPI(dir, addr string) (net.Listener, string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("--api %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, "", fmt.Errorf("--api %q: the local API listens on loopback only (127.0.0.1)", addr)
	}
	var saved apiclient.Info
	if b, err := os.ReadFile(filepath.Join(dir, WebFile)); err == nil {
		_ = json.Unmarshal(b, &saved)
	}
	var ln net.Listener
	if port == "0" && saved.Addr != "" {
		if h, _, err := net.SplitHostPort(saved.Addr); err == nil && h == host {
			ln, _ = net.Listen("tcp", saved.Addr)
		}
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, "", fmt.Errorf("local API: %w", err)
		}
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		ln.Close()
		return nil, "", err
	}
	token := hex.EncodeToString(tok)
	b, _ := json.Marshal(apiclient.Info{Addr: ln.Addr().String()})
	if err := writeFileAtomic(filepath.Join(dir, WebFile), b, 0o600); err != nil {
		ln.Close()
		return nil, "", err
	}
	return ln, token, nil
}

// StartOrWait starts the node like Start. If the profile does not exist
// yet, or needs a passphrase none was given, it serves the web app and
// the local API in setup mode instead (see api.NewSetup) and returns once
// the page created or unlocked the profile and the node runs. waiting is
// called with the web app's address and a one-time login address
// (LoginURL) when it starts waiting.
func StartOrWait(ctx context.Context, o Options, waiting func(addr, loginURL, state string)) (*Node, error) {
	if o.APIAddr == "-" {
		return Start(ctx, o)
	}
	n, err := Start(ctx, o)
	state := apiclient.SetupNew
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, ErrNoProfile):
	case errors.Is(err, ErrNeedPassphrase):
		state = apiclient.SetupLocked
	default:
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := secureDir(o.Dir); err != nil {
		return nil, err
	}
	ln, token, err := listenAPI(o.Dir, o.APIAddr)
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	h := &apiHandoff{ln: ln, token: token, swap: &swapHandler{}, logins: api.NewLogins(nil)}
	h.srv = &http.Server{Handler: h.swap, ReadHeaderTimeout: 10 * time.Second}
	var (
		mu      sync.Mutex
		started = make(chan *Node, 1)
		stateV  atomic.Value
	)
	stateV.Store(state)
	start := func(ks KeySource) (apiclient.Status, error) {
		o2 := o
		o2.Keys, o2.api = ks, h
		n, err := Start(ctx, o2)
		if err != nil {
			return apiclient.Status{}, err
		}
		started <- n
		return n.Status(ctx)
	}
	h.swap.set(api.NewSetup(api.SetupConfig{
		Token:  token,
		Addr:   addr,
		Logins: h.logins,
		State:  func() string { return stateV.Load().(string) },
		Init: func(rctx context.Context, req apiclient.InitRequest) (apiclient.Status, error) {
			mu.Lock()
			defer mu.Unlock()
			if stateV.Load() != apiclient.SetupNew {
				return apiclient.Status{}, ErrProfileExists
			}
			ks := KeySource{Passphrase: req.Passphrase, NoPassphrase: req.NoPassphrase}
			if _, err := Init(rctx, o.Dir, req.Name, ks); err != nil {
				return apiclient.Status{}, err
			}
			stateV.Store("starting")
			return start(KeySource{Passphrase: req.Passphrase})
		},
		Unlock: func(_ context.Context, pass string) (apiclient.Status, error) {
			mu.Lock()
			defer mu.Unlock()
			if stateV.Load() != apiclient.SetupLocked {
				return apiclient.Status{}, errors.New("the profile is not locked")
			}
			if pass == "" {
				return apiclient.Status{}, errors.New("type the passphrase of this profile")
			}
			return start(KeySource{Passphrase: pass})
		},
		Link: &setupLinker{o: o, start: start,
			claim: func() bool {
				mu.Lock()
				defer mu.Unlock()
				if stateV.Load() != apiclient.SetupNew {
					return false
				}
				stateV.Store("linking")
				return true
			},
			release: func() { stateV.Store(apiclient.SetupNew) },
		},
		Fail: func(err error) *apiclient.Error {
			switch {
			case errors.Is(err, ErrWrongPassphrase):
				return &apiclient.Error{Status: http.StatusForbidden, Code: apiclient.CodeWrongPassphrase, Message: err.Error()}
			case errors.Is(err, ErrProfileExists):
				return &apiclient.Error{Status: http.StatusConflict, Code: apiclient.CodeExists, Message: err.Error()}
			}
			return nil
		},
	}))
	go func() { _ = h.srv.Serve(ln) }()
	info, _ := json.Marshal(apiclient.Info{Addr: addr, Token: token, PID: os.Getpid()})
	if err := writeFileAtomic(filepath.Join(o.Dir, APIFile), info, 0o600); err != nil {
		h.srv.Close()
		return nil, err
	}
	if waiting != nil {
		waiting(addr, LoginURL(addr, h.logins.Code()), state)
	}
	select {
	case n := <-started:
		return n, nil
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = h.srv.Shutdown(sctx)
		cancel()
		_ = os.Remove(filepath.Join(o.Dir, APIFile))
		return nil, ctx.Err()
	}
}
