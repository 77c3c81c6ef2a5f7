package p2p

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// TestListenFailureCleansUp: a port taken by someone else fails New with an
// error, and leaves no goroutine behind (checked by TestMain).
func TestListenFailureCleansUp(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	n, err := New(testCtx(t, 5*time.Second), Config{
		LoopbackOnly: true,
		ListenAddrs:  []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)},
	})
	if !errors.Is(err, ErrListen) {
		if err == nil {
			n.Close()
		}
		t.Fatalf("New on a taken port: %v, want ErrListen", err)
	}
}
