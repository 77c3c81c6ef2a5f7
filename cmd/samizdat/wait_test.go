package main

import (
	"strings"
	"testing"
	"time"
)

// waitLogCount waits until the daemon's log holds at least n lines with
// needle: a condition in the daemon ("two delivery attempts failed")
// instead of a sleep guessed to be long enough.
func waitLogCount(t *testing.T, p *profile, needle string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(p.log.String(), needle) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d log lines with %q\n%s", p.name, strings.Count(p.log.String(), needle), n, needle, p.log)
		}
		time.Sleep(50 * time.Millisecond) // polling the log
	}
}
