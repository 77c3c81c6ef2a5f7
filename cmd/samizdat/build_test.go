package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// buildArgs are the arguments of `go build` for the binary the end-to-end
// tests run: with -race when the test binary has it, so that a data race
// in a daemon fails the test that drives it.
func buildArgs(rest ...string) []string {
	args := []string{"build"}
	if raceBuild {
		args = append(args, "-race")
	}
	return append(args, rest...)
}

// buildEnv is the cgo setting for buildArgs (the race detector needs cgo;
// otherwise the binary is built as it ships, without).
func buildEnv() string {
	if raceBuild {
		return "CGO_ENABLED=1"
	}
	return "CGO_ENABLED=0"
}

var (
	plainOnce sync.Once
	plainPath string
	plainErr  error
)

// plainBinary is the binary built without -race (the e2e binary itself
// when the test has no race detector). TestCLIUpRacesCommands starts `up`
// 50 times and runs hundreds of short commands: under the race detector
// each start costs several times more, which would take that one test
// past minutes on two shared cores, and what it checks is how processes
// share a profile's locks, not data races (every other e2e test runs the
// race-built daemon).
func plainBinary(t *testing.T) string {
	t.Helper()
	if !raceBuild {
		return binary
	}
	plainOnce.Do(func() {
		plainPath = filepath.Join(filepath.Dir(binary), "samizdat-norace")
		cmd := exec.Command("go", "build", "-o", plainPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			plainErr = fmt.Errorf("build samizdat without -race: %v\n%s", err, out)
		}
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainPath
}
