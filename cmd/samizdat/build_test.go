package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// clientBinary is the binary for a command run while the profile's node
// runs: a client of the node's API, which hands the node the work (the
// node is race-built, and its races fail the test that drives it). A
// race-built process costs about 0.15 s of CPU to start against 0.03 s
// for the plain one (a second or more on a loaded machine), and the e2e
// tests run hundreds of such commands.
// Commands run with no node (init, offline sends and reads, wrong
// passphrases), `link`, `relay`, `soak` and the daemons themselves run
// the race-built binary.
func clientBinary(t *testing.T) string { return plainBinary(t) }

// plainPath is where TestMain built the binary without -race.
var plainPath string

// plainBinary is the binary built without -race (the e2e binary itself
// when the test has no race detector), as it ships. It runs the commands
// of clientBinary, and TestCLIUpRacesCommands' daemons: that test starts `up`
// 50 times and runs hundreds of short commands: under the race detector
// each start costs several times more, which would take that one test
// past minutes on two shared cores, and what it checks is how processes
// share a profile's locks, not data races (every other e2e test runs the
// race-built daemon).
func plainBinary(t *testing.T) string {
	if !raceBuild {
		return binary
	}
	return plainPath
}

// buildBinaries builds the e2e binary into dir, and with -race the plain
// one beside it.
func buildBinaries(dir string) error {
	binary = filepath.Join(dir, "samizdat")
	build := exec.Command("go", buildArgs("-o", binary, ".")...)
	build.Env = append(os.Environ(), buildEnv())
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build samizdat: %v\n%s", err, out)
	}
	if raceBuild {
		plainPath = filepath.Join(dir, "samizdat-norace")
		cmd := exec.Command("go", "build", "-o", plainPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build samizdat without -race: %v\n%s", err, out)
		}
	}
	return nil
}
