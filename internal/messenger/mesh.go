package messenger

import (
	"context"
	"crypto/ed25519"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/mesh"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Mesh mode (issue 8, internal/mesh): with no internet, nearby peers carry
// envelopes for others. A contact we cannot reach gets the same envelopes
// we would deposit with its mailbox hosts offered to the mesh, under the
// mailbox id of its card; what carriers bring for our own mailbox id is
// processed like a mailbox fetch. Messages stay queued until the
// recipient's ack comes back (through the mesh too, if need be).

// Mesh is what the messenger needs of the mesh: *mesh.Mesh is one.
type Mesh interface {
	Offer(id mailbox.ID, envelope []byte, hosts []string) error
	Own(key ed25519.PrivateKey, deliver mesh.DeliverFunc)
	Stats() mesh.Stats
}

var _ Mesh = (*mesh.Mesh)(nil)

// meshMailbox is where carriers file envelopes for a contact: the mesh
// mailbox id of its card, else its mailbox hosts' id.
func meshMailbox(card *identity.Card) (id mailbox.ID, hosts []string, ok bool) {
	for _, h := range card.Mailboxes {
		hosts = append(hosts, h.PeerID)
	}
	switch {
	case len(card.MeshMailbox) == mailbox.IDSize:
		copy(id[:], card.MeshMailbox)
	case len(card.Mailboxes) > 0:
		copy(id[:], card.Mailboxes[0].ID)
	default:
		return id, nil, false
	}
	return id, hosts, true
}

// offerToMesh hands a contact's queued envelopes to the mesh (offering one
// again is a no-op there). They stay queued here until the ack.
func (m *Messenger) offerToMesh(c *store.Contact, queue []store.OutboxItem) {
	if m.cfg.Mesh == nil {
		return
	}
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil {
		return
	}
	id, hosts, ok := meshMailbox(card)
	if !ok {
		return
	}
	for _, it := range queue {
		if err := m.cfg.Mesh.Offer(id, it.Payload, hosts); err != nil {
			m.log.Info("meshOfferRefused", "err", err)
			return
		}
	}
}

// receiveFromMesh processes envelopes carried to our mailbox, like a
// mailbox fetch, and reports which ones are done with.
func (m *Messenger) receiveFromMesh(ctx context.Context, raw [][]byte) []bool {
	done := make([]bool, len(raw))
	var envs []*wirepb.Envelope
	var idx []int
	for i, b := range raw {
		h := mailbox.HashEnvelope(b)
		if m.seenEnvelope(h) {
			done[i] = true
			continue
		}
		env, err := wire.ParseEnvelope(b)
		if err != nil {
			done[i] = true // garbage: nothing to keep
			continue
		}
		envs, idx = append(envs, env), append(idx, i)
	}
	if len(envs) == 0 {
		return done
	}
	resps, err := m.receiveBatch(ctx, "", envs)
	if err != nil {
		m.log.Info("meshEnvelopesNotAccepted", "err", err)
	}
	for j, r := range resps {
		if r.Status != wirepb.Response_STATUS_RETRY {
			done[idx[j]] = true
			m.markEnvelope(mailbox.HashEnvelope(raw[idx[j]]))
		}
	}
	m.wake() // acks to deliver
	return done
}

// MeshStats reports what the mesh carries; ok is false without a mesh.
func (m *Messenger) MeshStats() (mesh.Stats, bool) {
	if m.cfg.Mesh == nil {
		return mesh.Stats{}, false
	}
	return m.cfg.Mesh.Stats(), true
}

// meshMailboxID is our mailbox id for the card: carriers file our mail
// under it (listed even while the mesh is off, e.g. in an invite made
// offline).
func (m *Messenger) meshMailboxID() []byte {
	if m.mbKey == nil {
		return nil
	}
	id := mailbox.KeyID(m.mbKey)
	return id[:]
}
