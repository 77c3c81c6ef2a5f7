package messenger

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuf is a log sink safe for the node's goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRevokedDeviceRefusedAfterRestart: bob learns that alice revoked her
// phone, then restarts (his index of devices is rebuilt from the store);
// the phone, still holding its session with bob, writes: bob refuses it
// as a revoked device (ErrRevokedDevice, logged as such), not as a
// stranger, and his chat with alice keeps everything it had.
func TestRevokedDeviceRefusedAfterRestart(t *testing.T) {
	var logs, phoneLogs lockedBuf
	alice := newNode(t, "alice")
	bob := newNodeTuned(t, "bob", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	phone := linkDeviceTuned(t, alice, "phone", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&phoneLogs, nil)) })
	m1 := send(t, alice, "bob", "I have a phone now")
	waitState(t, alice, "bob", m1.ID, StateDelivered)
	p1 := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p1.ID, StateDelivered)

	revokeDevice(t, alice, phone)
	m2 := send(t, alice, "bob", "the phone is gone")
	waitState(t, alice, "bob", m2.ID, StateDelivered)
	before := messages(t, bob, "alice")

	bob.stop()
	bob.start()
	stolen := send(t, phone, "bob", "the stolen phone writes")
	eventually(t, 30*time.Second, "the revoked phone's message refused", func() bool {
		return stateOf(t, phone, "bob", stolen.ID) == StateFailed
	})
	if !strings.Contains(logs.String(), "msg=revokedDeviceRefused") {
		t.Fatalf("bob did not refuse the phone as a revoked device:\n%s", logs.String())
	}
	if !strings.Contains(phoneLogs.String(), RefusedRevoked) {
		t.Errorf("the phone was not told why:\n%s", phoneLogs.String())
	}
	after := messages(t, bob, "alice")
	if len(after) != len(before) {
		t.Fatalf("bob's chat with alice: %d messages before, %d after the refusal", len(before), len(after))
	}
	for i := range before {
		if after[i].Body != before[i].Body {
			t.Fatalf("bob's chat changed: %+v, was %+v", after, before)
		}
	}
	if strings.Contains(logs.String(), "stolen phone") {
		t.Fatal("bob logged message content")
	}
}
