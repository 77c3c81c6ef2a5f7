package store

import (
	"errors"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// toNanos stores a time as unix nanoseconds; the zero time is 0 (its own
// UnixNano is out of range).
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of toNanos, in UTC.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// nonNil keeps an empty []byte from binding as SQL NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// nameKey is the form of a contact name used for uniqueness and lookup:
// trimmed, NFC, then full Unicode case folding ("Маша" and " маша" are one
// name).
func nameKey(name string) string {
	return cases.Fold().String(norm.NFC.String(strings.TrimSpace(name)))
}

func isUnique(err error) bool {
	return errors.Is(err, sqlite3.CONSTRAINT_UNIQUE) || errors.Is(err, sqlite3.CONSTRAINT_PRIMARYKEY)
}

func isForeignKey(err error) bool {
	return errors.Is(err, sqlite3.CONSTRAINT_FOREIGNKEY)
}
