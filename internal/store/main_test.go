package store

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind (a Store
// not closed, a connection opener still running).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
