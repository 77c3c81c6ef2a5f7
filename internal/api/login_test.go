package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// TestLoginCodes: the web app is opened with a one-time login code, never
// the token. A code gives the token once; used again, expired, made up or
// sent from another site it gives nothing; minting codes needs the token.
func TestLoginCodes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	logins := NewLogins(func() time.Time { return now })
	const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	srv := httptest.NewServer(NewSetup(SetupConfig{Token: token, Logins: logins, State: func() string { return apiclient.SetupNew }}))
	defer srv.Close()
	post := func(path, bearer, origin string, body any) (int, map[string]string) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(b))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	login := func(code string) (int, string) {
		st, out := post("/api/v1/login", "", "", apiclient.LoginRequest{Code: code})
		return st, out["token"]
	}

	if st, _ := post("/api/v1/login/code", "", "", struct{}{}); st != http.StatusUnauthorized {
		t.Fatalf("a code minted without the token: %d", st)
	}
	st, out := post("/api/v1/login/code", token, "", struct{}{})
	if st != http.StatusOK || len(out["code"]) != 32 || strings.Contains(token, out["code"]) {
		t.Fatalf("mint: %d %v", st, out)
	}
	code := out["code"]
	if st, _ := post("/api/v1/login", "", "https://evil.example", apiclient.LoginRequest{Code: code}); st != http.StatusForbidden {
		t.Fatalf("login from another site: %d", st)
	}
	if st, got := login(code); st != http.StatusOK || got != token {
		t.Fatalf("login: %d %q", st, got)
	}
	if st, got := login(code); st != http.StatusUnauthorized || got != "" {
		t.Fatalf("the same code again: %d %q", st, got)
	}
	if st, _ := login(strings.Repeat("0", 32)); st != http.StatusUnauthorized {
		t.Fatalf("a made-up code: %d", st)
	}
	late := logins.Code()
	now = now.Add(LoginCodeTTL + time.Second)
	if st, got := login(late); st != http.StatusUnauthorized || got != "" {
		t.Fatalf("an expired code: %d %q", st, got)
	}
	// Unused codes do not pile up.
	for range 10 * maxLoginCodes {
		logins.Code()
	}
	if n := len(logins.codes); n > maxLoginCodes {
		t.Fatalf("%d codes kept", n)
	}
}
