package messenger

import (
	"context"
	"crypto/ed25519"
	"strings"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/mesh"
	"github.com/samizdat-im/samizdat/internal/store"
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

// offerToMesh hands a contact's queued envelopes to the mesh, each in a
// sealed box for the contact like a mailbox deposit (sealed sender). A box
// is sealed once per run of the node, so that offering it again is a no-op
// in the mesh; after a restart a new box may travel beside the old one,
// and the recipient shows the message once (by its id). The envelopes stay
// queued here until the ack.
func (m *Messenger) offerToMesh(ctx context.Context, c *store.Contact, queue []store.OutboxItem) {
	if m.cfg.Mesh == nil {
		return
	}
	// The primary device's own mailbox, as for a mailbox deposit (the
	// contact's card may be another device's).
	card, err := m.primaryCard(ctx, c)
	if err != nil {
		return
	}
	id, hosts, ok := meshMailbox(card)
	if !ok {
		return
	}
	for _, it := range queue {
		k := depositKey(c.ID, card.Serial, it.MessageID)
		m.mbMu.Lock()
		box := m.meshBoxes[k]
		m.mbMu.Unlock()
		if box == nil {
			if box, err = m.sealFor(card.Identity, it.Payload); err != nil {
				m.log.Error("sealFailed", "err", err)
				return
			}
			m.mbMu.Lock()
			if m.meshBoxes == nil || len(m.meshBoxes) > maxDepositedMemo {
				m.meshBoxes = map[string][]byte{}
			}
			m.meshBoxes[k] = box
			m.mbMu.Unlock()
		}
		if err := m.cfg.Mesh.Offer(id, box, hosts); err != nil {
			m.log.Info("meshOfferRefused", "err", err)
			return
		}
	}
}

// receiveFromMesh processes sealed boxes carried to one of our mailboxes,
// like a mailbox fetch, and reports which ones are done with.
func (m *Messenger) receiveFromMesh(ctx context.Context, raw [][]byte) []bool {
	done := make([]bool, len(raw))
	items := make([]mailbox.Item, len(raw))
	for i, b := range raw {
		items[i] = mailbox.Item{Hash: mailbox.HashEnvelope(b), Envelope: b}
	}
	var envs []*wirepb.Envelope
	var hints [][]byte
	var idx []int
	for i, o := range m.unsealAll(items) {
		switch {
		case o.seen, o.err != nil:
			done[i] = true // processed already; garbage or not for us: nothing to keep
		default:
			envs, hints, idx = append(envs, o.env), append(hints, o.from), append(idx, i)
		}
	}
	if len(envs) == 0 {
		return done
	}
	resps, err := m.receiveSealed(ctx, "", envs, hints)
	if err != nil {
		m.log.Info("meshEnvelopesNotAccepted", "err", err)
	}
	for j, r := range resps {
		if r.Status != wirepb.Response_STATUS_RETRY {
			done[idx[j]] = true
			m.markEnvelope(items[idx[j]].Hash)
		}
	}
	// The acks go back through the carrier that brought the boxes, during
	// this same meeting: offered to the mesh before we return (the mesh
	// then syncs once more with that carrier), as well as queued for the
	// other paths.
	m.offerAcksToMesh(ctx)
	m.wake() // acks to deliver
	return done
}

// offerAcksToMesh offers every queued ack to the mesh, for contacts the
// mesh can reach (a mesh mailbox id in their card).
func (m *Messenger) offerAcksToMesh(ctx context.Context) {
	type queued struct {
		c     *store.Contact
		items []store.OutboxItem
	}
	var qs []queued
	err := m.st.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		if err != nil {
			return err
		}
		for i := range cs {
			items, err := tx.Outbox(cs[i].ID)
			if err != nil {
				return err
			}
			var acks []store.OutboxItem
			for _, it := range items {
				if strings.HasPrefix(it.MessageID, ackItemPrefix) {
					acks = append(acks, it)
				}
			}
			if len(acks) > 0 {
				qs = append(qs, queued{c: &cs[i], items: acks})
			}
		}
		return nil
	})
	if err != nil {
		m.log.Info("meshAcksNotOffered", "err", err)
		return
	}
	for _, q := range qs {
		m.offerToMesh(ctx, q.c, q.items)
	}
}

// meshOwnKeys gives the mesh every mailbox key we still fetch, the
// current one last (it is proven first to neighbours).
func (m *Messenger) meshOwnKeys() {
	if m.cfg.Mesh == nil {
		return
	}
	ks := m.mailboxKeys() // current first
	for i := len(ks) - 1; i >= 0; i-- {
		m.cfg.Mesh.Own(ks[i], m.receiveFromMesh)
	}
}

// MeshStats reports what the mesh carries; ok is false without a mesh.
func (m *Messenger) MeshStats() (mesh.Stats, bool) {
	if m.cfg.Mesh == nil {
		return mesh.Stats{}, false
	}
	return m.cfg.Mesh.Stats(), true
}

// meshMailboxID is our current mailbox id for the card when the mesh runs
// and we have no mailbox hosts: carriers file our mail under it. With
// hosts, their entries in the card carry the same id (meshMailbox falls
// back on it), so it is not repeated.
func (m *Messenger) meshMailboxID() []byte {
	if m.cfg.Mesh == nil || len(m.mailboxHosts()) > 0 {
		return nil
	}
	m.mbMu.Lock()
	key := m.mbKey
	m.mbMu.Unlock()
	if key == nil {
		return nil
	}
	id := mailbox.KeyID(key)
	return id[:]
}
