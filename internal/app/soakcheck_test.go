package app

import (
	"strings"
	"testing"
)

// The soak's checker must catch each way a message can go wrong: fed a
// fabricated history with one fault, it fails and names the message.
func TestSoakCheckerHasTeeth(t *testing.T) {
	sent := []string{"a1", "a2", "a3", "a4"}
	for _, tc := range []struct {
		name  string
		got   []string
		unc   map[string]bool
		ok    bool
		count func(soakVerdict) int
		names string // the id the problem must name
	}{
		{name: "exact", got: []string{"a1", "a2", "a3", "a4"}, ok: true},
		{name: "unconfirmed once, anywhere", got: []string{"a1", "u1", "a2", "a3", "a4"}, unc: map[string]bool{"u1": true}, ok: true},
		{name: "lost", got: []string{"a1", "a2", "a4"}, count: func(v soakVerdict) int { return v.Lost }, names: "a3"},
		{name: "lost last", got: []string{"a1", "a2", "a3"}, count: func(v soakVerdict) int { return v.Lost }, names: "a4"},
		{name: "nothing arrived", got: nil, count: func(v soakVerdict) int { return min(v.Lost, 1) }, names: "a1"},
		{name: "duplicated", got: []string{"a1", "a2", "a2", "a3", "a4"}, count: func(v soakVerdict) int { return v.Duplicated }, names: "a2"},
		{name: "duplicated later", got: []string{"a1", "a2", "a3", "a4", "a1"}, count: func(v soakVerdict) int { return v.Duplicated }, names: "a1"},
		{name: "unconfirmed twice", got: []string{"a1", "u1", "a2", "a3", "u1", "a4"}, unc: map[string]bool{"u1": true}, count: func(v soakVerdict) int { return v.Duplicated }, names: "u1"},
		{name: "reordered", got: []string{"a1", "a3", "a2", "a4"}, count: func(v soakVerdict) int { return v.OutOfOrder }, names: "a2"},
		{name: "first last", got: []string{"a2", "a3", "a4", "a1"}, count: func(v soakVerdict) int { return v.OutOfOrder }, names: "a1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := checkSoakStreams([]soakStream{
				{Name: "n0→n1", Sent: sent, Got: tc.got, Unconfirmed: tc.unc},
				{Name: "n1→n0", Sent: []string{"b1"}, Got: []string{"b1"}}, // a good stream beside it
			})
			if v.OK() != tc.ok {
				t.Fatalf("OK() = %v, want %v: %s", v.OK(), tc.ok, v)
			}
			if v.Copies != 5 {
				t.Errorf("copies %d, want 5", v.Copies)
			}
			if tc.ok {
				if v.Received != 5 || len(v.Problems) != 0 {
					t.Errorf("a good history: %s", v)
				}
				return
			}
			if tc.count(v) != 1 {
				t.Errorf("the fault counted %d times, want 1: %s", tc.count(v), v)
			}
			if len(v.Problems) == 0 || !strings.Contains(v.Problems[0], tc.names) || !strings.Contains(v.Problems[0], "n0→n1") {
				t.Errorf("the problem does not name %s in n0→n1: %q", tc.names, v.Problems)
			}
		})
	}
}
