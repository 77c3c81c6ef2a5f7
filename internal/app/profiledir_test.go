package app

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

func mode(t *testing.T, dir string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestProfileDirPrivate: a profile directory is 0700 whatever it was: made
// by Init inside an existing open directory, or opened up later; one that
// belongs to another user is refused with ErrProfilePerm.
func TestProfileDirPrivate(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "p")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(ctx, dir, "Alice", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("after Init the profile directory has mode %o", m)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := OpenOffline(ctx, dir, KeySource{})
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("an opened profile directory keeps mode %o", m)
	}
	// A fresh directory made by a node waiting for its profile.
	fresh := filepath.Join(t.TempDir(), "new")
	if err := os.MkdirAll(fresh, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := secureDir(fresh); err != nil || mode(t, fresh) != 0o700 {
		t.Fatalf("secureDir: %v, mode %o", err, mode(t, fresh))
	}
	if os.Getuid() != 0 {
		t.Skip("not root: cannot give a directory to another user (the rest of the test ran)")
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenOffline(ctx, dir, KeySource{}); !errors.Is(err, ErrProfilePerm) {
		t.Fatalf("a profile directory of another user: %v, want ErrProfilePerm", err)
	}
	if m := mode(t, dir); m != 0o755 {
		t.Fatalf("another user's directory was changed to %o", m)
	}
}

// TestFreshTokenPerUp: every start of the local API has a new token (a
// token seen once is worth nothing after a restart) on the same address;
// web.json, which remembers the address, holds no token.
func TestFreshTokenPerUp(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]bool{}
	var addr string
	for i := range 3 {
		ln, token, err := listenAPI(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && ln.Addr().String() != addr {
			t.Errorf("run %d moved from %s to %s", i, addr, ln.Addr())
		}
		addr = ln.Addr().String()
		ln.Close()
		if len(token) != 64 || seen[token] {
			t.Fatalf("run %d: token %q reused or malformed", i, token)
		}
		seen[token] = true
		b, err := os.ReadFile(filepath.Join(dir, WebFile))
		if err != nil {
			t.Fatal(err)
		}
		var info apiclient.Info
		if err := json.Unmarshal(b, &info); err != nil || info.Token != "" || info.Addr != addr {
			t.Fatalf("web.json = %s", b)
		}
	}
}
