package app

import (
	"fmt"
	"strings"
)

// The soak's checker: a pure function of what was sent and what each
// receiver shows, so that it is tested on fabricated histories
// (soakcheck_test.go) and cannot quietly pass a lost, duplicated or
// reordered message.

// soakStream is one sender-to-receiver stream: what the receiver must show
// of one sender (1:1 messages to it, or the sender's posts in a group).
type soakStream struct {
	Name string   // e.g. "n0→n1" or "group: n0→n2", for the failures
	Sent []string // the ids the sender's sends returned, in the order they returned
	Got  []string // the ids the receiver shows from this sender, in its display order
	// Unconfirmed are ids the sender holds whose send answer was lost (the
	// node was killed mid-call): they may be shown once, never twice.
	Unconfirmed map[string]bool
}

// soakVerdict is what the checker found over all streams.
type soakVerdict struct {
	Copies     int      // sent ids × their receivers: what must be shown
	Received   int      // copies shown at least once
	Lost       int      // copies not shown
	Duplicated int      // ids shown more than once (a confirmed or unconfirmed send, or one nobody sent)
	OutOfOrder int      // copies shown before one sent earlier
	Problems   []string // one line per failure, naming the id
}

// OK reports whether every copy was shown exactly once and in order.
func (v soakVerdict) OK() bool {
	return v.Lost == 0 && v.Duplicated == 0 && v.OutOfOrder == 0
}

// maxSoakProblems bounds the lines kept in a verdict, and
// maxStreamProblems those of one stream (so that every failing stream is
// named).
const (
	maxSoakProblems   = 60
	maxStreamProblems = 4
)

func (v *soakVerdict) problem(inStream *int, format string, args ...any) {
	*inStream++
	if len(v.Problems) < maxSoakProblems && *inStream <= maxStreamProblems {
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
}

// checkSoakStreams checks every stream: each sent id shown exactly once,
// in the order it was sent (ids the sender never confirmed may appear
// anywhere, once).
func checkSoakStreams(streams []soakStream) soakVerdict {
	var v soakVerdict
	for _, s := range streams {
		np := 0 // problems of this stream
		sentAt := make(map[string]int, len(s.Sent))
		for i, id := range s.Sent {
			sentAt[id] = i
		}
		count := make(map[string]int, len(s.Got))
		for _, id := range s.Got {
			count[id]++
		}
		for _, id := range s.Sent {
			v.Copies++
			switch n := count[id]; {
			case n == 0:
				v.Lost++
				v.problem(&np, "%s: message %s lost (sent #%d of %d)", s.Name, id, sentAt[id]+1, len(s.Sent))
			case n > 1:
				v.Received++
			default:
				v.Received++
			}
		}
		for _, id := range s.Got {
			if count[id] > 1 {
				what := "message"
				if _, ok := sentAt[id]; !ok {
					what = "unconfirmed message"
					if !s.Unconfirmed[id] {
						what = "message nobody sent"
					}
				}
				v.Duplicated++
				v.problem(&np, "%s: %s %s shown %d times", s.Name, what, id, count[id])
				count[id] = 0 // report it once
			}
		}
		// Order: the confirmed ids, as shown (first copy each), must come
		// in the order they were sent.
		last, lastID := -1, ""
		seen := map[string]bool{}
		for _, id := range s.Got {
			i, ok := sentAt[id]
			if !ok || seen[id] {
				continue
			}
			seen[id] = true
			if i < last {
				v.OutOfOrder++
				v.problem(&np, "%s: message %s (sent #%d) shown after %s (sent #%d)", s.Name, id, i+1, lastID, last+1)
				continue
			}
			last, lastID = i, id
		}
	}
	return v
}

func (v soakVerdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d copies to show: received %d, lost %d, duplicated %d, out of order %d", v.Copies, v.Received, v.Lost, v.Duplicated, v.OutOfOrder)
	for _, p := range v.Problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	if n := v.Lost + v.Duplicated + v.OutOfOrder; n > len(v.Problems) {
		fmt.Fprintf(&b, "\n  … and %d more", n-len(v.Problems))
	}
	return b.String()
}
