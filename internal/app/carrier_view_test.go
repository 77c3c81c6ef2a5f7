package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/mesh"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// TestCarrierHandOverSeesNoDevice: a mesh carrier, wired as a node wires
// it (the deposit goes through anonOpener), meets the recipient's mailbox
// host and hands it the envelope it carries. The host's mailbox service
// (its trace: every byte and each stream's peer id and address; its
// logs; its database, decrypted) never names the carrier's device: the
// deposit came from a peer id made for it. (The host's libp2p node does
// see the carrier's device connect — that meeting is what triggers the
// hand-over — which links the two by timing only; docs/SECURITY.md.)
func TestCarrierHandOverSeesNoDevice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	trace, logs := &lockedBuffer{}, &lockedBuffer{}
	host := startAt(t, "host", "127.0.0.5", RelayOptions{Mailbox: MailboxOptions{Trace: trace},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	node := func(ip string) *p2p.Node {
		n, err := p2p.New(ctx, p2p.Config{LoopbackOnly: true, ListenAddrs: []string{"/ip4/" + ip + "/tcp/0"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		return n
	}
	srcNode, carrierNode := node("127.0.0.2"), node("127.0.0.3")
	start := func(n *p2p.Node) *mesh.Mesh {
		m, err := mesh.New(mesh.Config{Transport: n, Depositor: anonOpener{n}, SyncInterval: time.Hour, MinSyncInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		m.Start()
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	src, carrier := start(srcNode), start(carrierNode)
	owner, err := mailbox.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	env := make([]byte, 700)
	rand.Read(env)
	if err := src.Offer(mailbox.KeyID(owner), env, []string{host.PeerID()}); err != nil {
		t.Fatal(err)
	}
	if err := carrierNode.Connect(ctx, srcNode.PeerID(), srcNode.Addrs()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the carrier to take the envelope", func() bool { return carrier.Stats().Carried == 1 })
	_ = srcNode.Close() // the author is gone: only the carrier can hand it over
	if err := carrierNode.Connect(ctx, host.PeerID(), host.Addrs()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the carrier to hand it to the host", func() bool {
		s := carrier.Stats()
		return s.HandedToHosts == 1 && s.Carried == 0
	})
	held, err := host.Mailbox.st.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(held, env) {
		t.Fatal("the host's database does not hold the carried envelope")
	}
	streams := regexp.MustCompile(`#stream peer=(\S+) addr=(\S*)`).FindAllSubmatch(trace.Bytes(), -1)
	if len(streams) != 1 {
		t.Fatalf("the trace shows %d mailbox streams, want the hand-over's one", len(streams))
	}
	carrierPeer := carrierNode.PeerID()
	if string(streams[0][1]) == carrierPeer {
		t.Fatal("the hand-over's deposit came from the carrier's device peer id")
	}
	host.Close()
	// The host's p2p layer logs the carrier's device connecting (the
	// meeting); what its mailbox service logged must not name it.
	var service, meeting []byte
	for _, line := range bytes.SplitAfter(logs.Bytes(), []byte("\n")) {
		if bytes.Contains(line, []byte("component=p2p")) {
			meeting = append(meeting, line...)
		} else {
			service = append(service, line...)
		}
	}
	if !bytes.Contains(meeting, []byte(carrierPeer[:16])) {
		t.Log("the host's p2p log does not show the carrier's device connecting")
	}
	views := map[string][]byte{"trace": trace.Bytes(), "mailbox service's logs": service, "database": held}
	for v, b := range views {
		for what, s := range map[string]string{"the carrier's peer id": carrierPeer, "its 16-character prefix": carrierPeer[:16], "the author's peer id": srcNode.PeerID()} {
			if i := bytes.Index(b, []byte(s)); i >= 0 {
				lo, hi := max(0, i-300), min(len(b), i+100)
				t.Errorf("the host's %s contains %s: …%s…", v, what, b[lo:hi])
			}
		}
	}
}
