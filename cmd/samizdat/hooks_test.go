package main

import (
	"strings"
	"testing"
)

// TestCLIUpBadHookFlags: a malformed --on-alert / --on-message is a usage
// error naming the flag, before the node starts.
func TestCLIUpBadHookFlags(t *testing.T) {
	t.Parallel()
	p := newProfile(t, "hooks")
	p.must("init", "--name", "u", "--no-passphrase")
	for _, args := range [][]string{
		{"up", "--on-alert", "[]"},
		{"up", "--on-alert", `["notify-send", 3]`},
		{"up", "--on-message", `[""]`},
	} {
		_, errOut, code := p.run(args...)
		if code != 2 || !strings.HasPrefix(errOut, "samizdat: --on-") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and a message naming the flag", args, code, errOut)
		}
	}
}
