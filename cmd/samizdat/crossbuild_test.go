package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCrossBuildPhone builds the binary for the phone targets of issue 17:
// Android on arm64 without cgo (it runs in a terminal app such as Termux;
// the web app serves the screen) and Linux on arm64 (PinePhone, Raspberry
// Pi). A dependency that needs cgo or an OS-specific file that does not
// build there fails it. Skipped under -short: it compiles everything twice.
func TestCrossBuildPhone(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cross builds skipped with -short")
	}
	for _, target := range []struct{ goos, goarch string }{{"android", "arm64"}, {"linux", "arm64"}} {
		t.Run(target.goos+"-"+target.goarch, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "samizdat")
			args := []string{"build", "-o", out}
			if target.goos == "android" {
				// go-libp2p lists Android's interfaces with
				// github.com/wlynxg/anet, which reaches into package net
				// by go:linkname; since Go 1.23 the linker refuses that
				// unless told (as anet's README says).
				args = append(args, "-ldflags=-checklinkname=0")
			}
			cmd := exec.Command("go", append(args, ".")...)
			cmd.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch, "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s/%s: %v\n%s", target.goos, target.goarch, err, b)
			}
			if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
				t.Fatalf("no binary: %v", err)
			}
		})
	}
}
