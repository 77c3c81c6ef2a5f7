package messenger

import (
	"context"
	"time"

	"github.com/samizdat-im/samizdat/internal/p2p"
)

// Mailbox traffic that names no one (issue 14): every deposit and every
// fetch session goes over a fresh transport identity (p2p.OpenEphemeral),
// never this device's, so a host cannot link the sender's device to the
// recipient's mailbox id, the fetching device to it, or one rotated id to
// the next by the peer id that comes to it. Where a host is listed with a
// circuit address (…/p2p/<relay>/p2p-circuit: it keeps a slot on another
// relay), only the circuit is dialled, so the host sees that relay's
// address instead of ours, and the relay sees our address but only a
// Noise-encrypted stream to the host. The fetch proof stays per mailbox
// (bound to the host's peer id and a nonce), which identifies a mailbox,
// not a device.

// anonDialer opens one stream over a throwaway transport identity:
// *p2p.Node is one.
type anonDialer interface {
	OpenEphemeral(ctx context.Context, peerID string, addrs []string, protocol string) (p2p.Stream, error)
}

// hostOpener is the mailbox.Opener for one mailbox host.
type hostOpener struct {
	m *Messenger
	h MailboxHost
}

// OpenStream opens a stream to the host from a throwaway identity. A
// Transport that cannot (a test fake) falls back to its own streams.
func (o hostOpener) OpenStream(ctx context.Context, peerID, protocol string) (p2p.Stream, error) {
	start := time.Now()
	var s p2p.Stream
	var err error
	if d, ok := o.m.tr.(anonDialer); ok {
		s, err = d.OpenEphemeral(ctx, peerID, p2p.CircuitAddrs(o.h.Addrs), protocol)
	} else {
		o.m.tr.AddAddrs(peerID, o.h.Addrs)
		s, err = o.m.tr.OpenStream(ctx, peerID, protocol)
	}
	o.m.health.note(peerID, time.Since(start), err)
	return s, err
}

// opener returns the mailbox.Opener for host h.
func (m *Messenger) opener(h MailboxHost) hostOpener { return hostOpener{m: m, h: h} }
