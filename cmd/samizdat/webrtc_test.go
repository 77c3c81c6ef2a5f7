package main

import (
	"strings"
	"testing"
)

// A STUN server is given as IP:PORT, never as a name to look up: anything
// else is a usage error (exit 2), before the node starts.
func TestCLIStunFlag(t *testing.T) {
	t.Parallel()
	c := newProfile(t, "c")
	c.must("init", "--name", "c", "--no-passphrase")
	for _, bad := range []string{"stun.example.com:3478", "198.18.0.1"} {
		if _, errOut, code := c.run("up", "--stun", bad); code != 2 || !strings.Contains(errOut, "never looked up by name") {
			t.Errorf("up --stun %s: exit %d, %q; want a usage error", bad, code, errOut)
		}
	}
}
