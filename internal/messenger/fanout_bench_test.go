package messenger

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// countingTransport counts the bytes written and read on the streams a
// node opens (its envelopes out, the responses and acks back; libp2p's
// Noise and yamux framing not included).
type countingTransport struct {
	Transport
	n *atomic.Int64
}

func (c countingTransport) DeviceKey() ed25519.PublicKey {
	return c.Transport.(deviceSigner).DeviceKey()
}

func (c countingTransport) SignDevice(msg []byte) ([]byte, error) {
	return c.Transport.(deviceSigner).SignDevice(msg)
}

func (c countingTransport) OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error) {
	s, err := c.Transport.OpenStream(ctx, peerID, protocol)
	if err != nil {
		return nil, err
	}
	return countingStream{s, c.n}, nil
}

type countingStream struct {
	p2p.Stream
	n *atomic.Int64
}

func (s countingStream) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	s.n.Add(int64(n))
	return n, err
}

func (s countingStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	s.n.Add(int64(n))
	return n, err
}

// BenchmarkFanout is issue 17's fan-out cost: alice sends b.N messages of
// 100 bytes (from 16 goroutines) to bob, who has 1, 2 or 5 devices, all
// online, each a real node on loopback; timed until every device has
// acked every message (alice's outbox and device outbox empty). It
// reports messages per second and the bytes on alice's streams per
// message (envelopes out, responses and acks back). Alice has one device:
// no sent copies. Run it as
//
//	go test -run '^$' -bench Fanout -benchtime 500x ./internal/messenger
func BenchmarkFanout(b *testing.B) {
	for _, devs := range []int{1, 2, 5} {
		b.Run(fmt.Sprintf("devices=%d", devs), func(b *testing.B) {
			var wire atomic.Int64
			alice := newNodeTuned(b, "alice", func(c *Config) { c.Transport = countingTransport{c.Transport, &wire} })
			bob := newNode(b, "bob")
			addContact(b, alice, bob)
			addContact(b, bob, alice)
			all := []*tnode{bob}
			for i := 1; i < devs; i++ {
				all = append(all, linkDevice(b, bob, fmt.Sprintf("bob-%d", i)))
			}
			// A first message carries bob's new card to alice, then one that
			// reaches every device starts each session.
			for _, text := range []string{"set-up 1", "set-up 2"} {
				m := send(b, bob, "alice", text)
				waitState(b, bob, "alice", m.ID, StateDelivered)
				s := send(b, alice, "bob", text)
				waitState(b, alice, "bob", s.ID, StateDelivered)
			}
			for _, d := range all {
				eventually(b, time.Minute, "set-up on "+d.name, func() bool { return hasMessage(b, d, "alice", "set-up 2", false) })
			}
			ctx := context.Background()
			before := wire.Load()
			b.ResetTimer()
			t0 := time.Now()
			var wg sync.WaitGroup
			var next atomic.Int64
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						if _, err := alice.m.Send(ctx, "bob", fmt.Sprintf("%-100d", i)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			peers := make([]string, len(all))
			for i, d := range all {
				peers[i] = d.n.PeerID()
			}
			eventually(b, 30*time.Minute, "every copy acked", func() bool {
				left := 0
				_ = alice.st.View(ctx, func(tx *store.Tx) error {
					c, err := tx.ContactByAccount(bob.m.AccountID())
					if err != nil {
						return err
					}
					items, err := tx.Outbox(c.ID)
					left += len(items)
					for _, p := range peers {
						di, _ := tx.DeviceOutbox(p)
						left += len(di)
					}
					return err
				})
				return left == 0
			})
			el := time.Since(t0)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			b.ReportMetric(float64(wire.Load()-before)/float64(b.N), "wireB/msg")
			b.ReportMetric(0, "ns/op")
		})
	}
}
