package mesh

import (
	"bytes"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// FuzzReadItem feeds arbitrary frames to the item reader: it must return
// an error or take a valid item, never panic, and never store an item whose
// id is not the hash of its envelope.
func FuzzReadItem(f *testing.F) {
	var seed bytes.Buffer
	env := []byte("an opaque sealed envelope")
	_ = wire.WriteFrame(&seed, wire.Marshal(&wirepb.MeshItem{Version: Version, MailboxId: make([]byte, 32), Hops: 3,
		ExpiresUnix: 1_900_000_000, EnvelopeSize: uint32(len(env)), Hosts: []string{"12D3KooW"}}))
	_ = wire.WriteFrame(&seed, env)
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := New(Config{Transport: newMemNet(t).node("x"), Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		rx := newReceiver(m, "peer")
		r := bytes.NewReader(b)
		for rx.readItem(r) == nil {
		}
		for _, it := range m.st.selectItems(func(*item) bool { return true }) {
			if it.env != nil && it.id != mailbox.HashEnvelope(it.env) {
				t.Fatal("stored an envelope under another id")
			}
		}
	})
}

// FuzzParseMessages: the protocol messages decode or fail cleanly.
func FuzzParseMessages(f *testing.F) {
	f.Add(wire.Marshal(&wirepb.MeshHello{Version: Version, Buckets: 16, Fingerprints: make([]byte, 128), Counts: make([]byte, 16)}))
	f.Add(wire.Marshal(&wirepb.MeshDiff{Version: Version, Buckets: []uint32{1}, Ids: make([]byte, 32)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf bytes.Buffer
		if wire.WriteFrame(&buf, b) != nil {
			return
		}
		var h wirepb.MeshHello
		if readMsg(bytes.NewReader(buf.Bytes()), &h) == nil {
			_ = validBuckets(h.Buckets)
		}
		var d wirepb.MeshDiff
		if readMsg(bytes.NewReader(buf.Bytes()), &d) == nil {
			_, _ = unpackIDs(d.Ids)
		}
	})
}
