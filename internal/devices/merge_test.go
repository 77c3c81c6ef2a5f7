package devices

import (
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
)

func dev(id string) identity.Device { return identity.Device{PeerID: id, Name: id} }

func listOf(v uint64, t0 time.Time, ids ...string) *List {
	l := &List{Version: v}
	for _, id := range ids {
		l.Entries = append(l.Entries, Entry{Device: dev(id), AddedAt: t0})
	}
	return l
}

func active(l *List) []string {
	var out []string
	for _, d := range l.Active() {
		out = append(out, d.PeerID)
	}
	return out
}

func TestMergeNewerListAdds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	phone := listOf(1, t0, "phone-aaaaaa", "laptop-bbbbbb")
	laptop := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb", "tablet-cccccc")
	changed, tell := phone.Merge(laptop, "")
	if !changed || tell || phone.Version != 2 || len(active(phone)) != 3 {
		t.Fatalf("changed %v tell %v version %d active %v", changed, tell, phone.Version, active(phone))
	}
	// Again: nothing changes (idempotent).
	if changed, tell := phone.Merge(laptop, ""); changed || tell {
		t.Fatalf("second merge changed %v tell %v", changed, tell)
	}
}

func TestMergeOlderListToldBack(t *testing.T) {
	t0 := time.Unix(1000, 0)
	phone := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb", "tablet-cccccc")
	laptop := listOf(1, t0, "phone-aaaaaa", "laptop-bbbbbb")
	changed, tell := phone.Merge(laptop, "")
	if changed || !tell || phone.Version != 2 {
		t.Fatalf("changed %v tell %v version %d", changed, tell, phone.Version)
	}
}

func TestMergeRevocationWins(t *testing.T) {
	t0 := time.Unix(1000, 0)
	phone := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb", "tablet-cccccc")
	laptop := listOf(3, t0, "phone-aaaaaa", "laptop-bbbbbb", "tablet-cccccc")
	laptop.Entries[2].RevokedAt = t0.Add(time.Minute)
	if changed, _ := phone.Merge(laptop, ""); !changed || phone.IsActive("tablet-cccccc") || phone.Version != 3 {
		t.Fatalf("revocation not taken: changed %v version %d active %v", changed, phone.Version, active(phone))
	}
	// An older list listing the tablet as active does not bring it back.
	old := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb", "tablet-cccccc")
	_, tell := phone.Merge(old, "")
	if phone.IsActive("tablet-cccccc") || !tell {
		t.Fatalf("revoked device came back (tell %v)", tell)
	}
}

// Two devices each link a device at the same version: both end with the
// union under the same version, in either order, and stop there.
func TestMergeConcurrentLinksConverge(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb", "tablet-cccccc")
	b := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb", "watch-dddddd")
	a0, b0 := a.clone(), b.clone()
	ca, ta := a.Merge(b0, "")
	cb, tb := b.Merge(a0, "")
	if !ca || !cb || !ta || !tb {
		t.Fatalf("changed %v %v tell %v %v", ca, cb, ta, tb)
	}
	if a.Version != 3 || b.Version != 3 || len(active(a)) != 4 || len(active(b)) != 4 || !a.sameDevices(b) {
		t.Fatalf("not converged: %d %v / %d %v", a.Version, active(a), b.Version, active(b))
	}
	// Each tells the other back: no further change, no further telling.
	if c, tell := a.Merge(b.clone(), ""); c || tell {
		t.Fatalf("a: changed %v tell %v", c, tell)
	}
	if c, tell := b.Merge(a.clone(), ""); c || tell {
		t.Fatalf("b: changed %v tell %v", c, tell)
	}
}

func TestMergeLastSeenLater(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb")
	b := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb")
	b.Entries[0].LastSeen = t0.Add(time.Hour)
	changed, tell := a.Merge(b, "")
	if !changed || tell || !a.Entries[0].LastSeen.Equal(t0.Add(time.Hour)) || a.Version != 2 {
		t.Fatalf("changed %v tell %v lastSeen %v version %d", changed, tell, a.Entries[0].LastSeen, a.Version)
	}
}

// The sending device's own entry (its addresses after a restart) is taken
// from its list, at the same version.
func TestMergeOriginAddrs(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb")
	b := listOf(2, t0, "phone-aaaaaa", "laptop-bbbbbb")
	b.Entries[1].Device.Addrs = []string{"/ip4/127.0.0.1/tcp/4001"}
	changed, tell := a.Merge(b, "laptop-bbbbbb")
	if !changed || tell || a.Version != 2 || len(a.Entries[1].Device.Addrs) != 1 {
		t.Fatalf("changed %v tell %v version %d entry %+v", changed, tell, a.Version, a.Entries[1])
	}
}
