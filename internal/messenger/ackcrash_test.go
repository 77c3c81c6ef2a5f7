package messenger

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// ackKiller is a transport that dies the moment the receiver, having
// committed a batch of received messages, writes the first answer (the
// ack): the answer never leaves and every later stream is reset, as if
// the process had been killed between the commit and the ack.
type ackKiller struct {
	*p2p.Node
	once  sync.Once
	fired chan struct{}
	dead  atomic.Bool
}

func (k *ackKiller) Handle(protocol string, h func(s p2p.Stream)) {
	if protocol != ProtocolMsg {
		k.Node.Handle(protocol, h)
		return
	}
	k.Node.Handle(protocol, func(s p2p.Stream) {
		if k.dead.Load() {
			_ = s.Reset()
			return
		}
		h(&killedStream{Stream: s, k: k})
	})
}

type killedStream struct {
	p2p.Stream
	k *ackKiller
}

func (s *killedStream) Write([]byte) (int, error) {
	s.k.dead.Store(true)
	_ = s.Stream.Reset()
	s.k.once.Do(func() { close(s.k.fired) })
	return 0, errors.New("killed between commit and ack")
}

// TestKilledBetweenCommitAndAck: bob stores a batch of alice's messages
// and dies before his ack leaves. Alice never saw the ack, so she sends
// them again once bob is back; bob, who has them, answers with the ack he
// kept. Every message ends delivered, and bob holds each exactly once.
func TestKilledBetweenCommitAndAck(t *testing.T) {
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	bob.pinAddr()
	k := &ackKiller{fired: make(chan struct{})}
	bob.restartWith(func(c *Config) {
		k.Node = c.Transport.(*p2p.Node)
		c.Transport = k
	})
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { // together, so that bob takes them in batches
			defer wg.Done()
			ids[i] = send(t, alice, "bob", fmt.Sprintf("before the crash %d", i)).ID
		}()
	}
	wg.Wait()
	<-k.fired
	// The batch is committed at bob, and alice has no ack for it.
	stored := len(messages(t, bob, "alice"))
	if stored == 0 {
		t.Fatal("the receiver died before committing anything: not the case under test")
	}
	bob.restartWith(nil)
	for _, id := range ids {
		waitState(t, alice, "bob", id, StateDelivered)
	}
	got := messages(t, bob, "alice")
	seen := map[string]int{}
	for _, m := range got {
		seen[m.Body]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("before the crash %d", i)]; c != 1 {
			t.Errorf("message %d held %d times, want once", i, c)
		}
	}
	if len(got) != n {
		t.Errorf("bob holds %d messages, want %d (%d were committed before the crash)", len(got), n, stored)
	}
}
