//go:build race

package messenger

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// raceBuild shrinks the many-node tests under the race detector, which
// makes their crypto several times slower: CI runs every package with
// -race on two shared cores under go test's 10-minute limit. The full-size
// runs are the ones without -race: TestFullSizeWithoutRace runs them in
// the same `go test -race ./...`.
const raceBuild = true

// TestFullSizeWithoutRace runs the acceptance tests at their full
// size (a 20-member group, a 50-subscriber channel) in a test binary
// built without the race detector: under it the 20-member group alone
// takes minutes on two cores.
func TestFullSizeWithoutRace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the package's tests again without -race")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "test", "-count=1", "-run", "^(TestGroupRemoveAndCatchUp|TestChannelWithheldPostAndForgery)$", "-v", ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("full-size run without -race: %v\n%s", err, out)
	}
	for _, name := range []string{"TestGroupRemoveAndCatchUp", "TestChannelWithheldPostAndForgery"} {
		if !strings.Contains(string(out), "--- PASS: "+name) {
			t.Fatalf("%s did not run at full size:\n%s", name, out)
		}
	}
}
