package store

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (a Store
// not closed, a connection opener still running).
func TestMain(m *testing.M) {
	if path := os.Getenv(walChildEnv); path != "" {
		os.Exit(walChild(path))
	}
	goleak.VerifyTestMain(m)
}
