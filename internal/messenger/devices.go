package messenger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Linked devices (issue 17): the glue between internal/devices, which
// runs linking and keeps the device list, and the messenger, which holds
// the account and signs the card. Our card lists this device first, then
// the account's other active devices, under the list's version.

// ErrRevokedDevice is returned for an envelope from a device that the
// contact's current card does not list (revoked, or never linked).
var ErrRevokedDevice = errors.New("message from a device the account does not list (revoked?)")

// RefusedRevoked is the reason a contact gives a device it refuses as
// revoked (Response.error): the device's log says so, instead of "cannot
// decrypt or parse".
const RefusedRevoked = "this device was revoked by its account"

// cardDevices returns the devices our card lists and the list's version:
// self first, then the other active devices of the account.
func (m *Messenger) cardDevices(ctx context.Context, self identity.Device) ([]identity.Device, uint64) {
	var l *devices.List
	if err := m.st.View(ctx, func(tx *store.Tx) (err error) { l, err = devices.Load(tx); return err }); err != nil {
		return []identity.Device{self}, 0
	}
	out := []identity.Device{self}
	for _, e := range l.Entries {
		if e.Device.PeerID == self.PeerID {
			out[0].Name = e.Device.Name
		} else if !e.Revoked() {
			out = append(out, e.Device)
		}
	}
	return out, l.Version
}

// DevicesChanged re-signs our card after the device list changed (a device
// linked or revoked): the DHT record is republished and the card is pushed
// at once to every device of every contact (cardpush.go).
func (m *Messenger) DevicesChanged(ctx context.Context) error {
	// A device revoked: our groups get a new key before our next message
	// (groupdevices.go), and its keys are forgotten.
	if err := m.st.Update(ctx, func(tx *store.Tx) error {
		if err := m.ownDevicesRevoked(tx); err != nil {
			return err
		}
		return m.queueRevocationNotices(tx) // the revoked device is told (revoked.go)
	}); err != nil {
		return err
	}
	m.cardMu.Lock()
	m.ownCard = nil
	m.cardMu.Unlock()
	if err := m.pushCard(ctx); err != nil {
		return err
	}
	// Our other devices learn the change (devsync.go).
	err := m.st.Update(ctx, func(tx *store.Tx) error {
		if err := m.syncDevices(tx); err != nil {
			return err
		}
		return m.syncSnapshot(tx)
	})
	m.syncWake()
	return err
}

// OwnDevice returns this device's entry in our card (certified).
func (m *Messenger) OwnDevice(ctx context.Context) (identity.Device, error) {
	b, err := m.card(ctx)
	if err != nil {
		return identity.Device{}, err
	}
	c, err := identity.ParseSignedCard(b)
	if err != nil || len(c.Devices) == 0 {
		return identity.Device{}, fmt.Errorf("own card: %w", err)
	}
	return c.Devices[0], nil
}

// LinkProvision is what linking gives a new device of this account: the
// account's private identity, its name and our contacts (their signed
// cards), sealed by internal/devices to the new device only.
func (m *Messenger) LinkProvision(ctx context.Context) (*wirepb.LinkProvision, error) {
	sync := &wirepb.LinkSync{Version: wire.Version}
	err := m.st.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		if err != nil {
			return err
		}
		for _, c := range cs {
			sync.Contacts = append(sync.Contacts, &wirepb.SyncContact{Card: c.Card, Name: c.Name, Verified: c.Verified})
		}
		gs, err := tx.Groups()
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.Gone {
				continue
			}
			sg := &wirepb.SyncGroup{Id: g.ID, Secret: g.Secret, Name: g.Name, CreatedUnixMs: g.Created.UnixMilli()}
			if sg.Ops, err = tx.GroupOps(g.ID); err != nil {
				return err
			}
			keys, err := tx.GroupKeys(g.ID)
			if err != nil {
				return err
			}
			for _, k := range keys {
				sg.Keys = append(sg.Keys, &wirepb.SyncGroupKey{Member: k.Member, Epoch: k.Epoch, State: k.State})
			}
			// Our own key, as a receiver: the new device reads what this
			// one posts (it makes a key of its own to post).
			if s, err := senderkey.UnmarshalSender(g.Sender); err == nil {
				if r, err := senderkey.NewReceiver(s.Distribution(), senderkey.Config{}); err == nil {
					sg.Keys = append(sg.Keys, &wirepb.SyncGroupKey{Member: keyOwner(m.acct, m.selfTag()), Epoch: s.Epoch(), State: r.Marshal()})
				}
			}
			sync.Groups = append(sync.Groups, sg)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &wirepb.LinkProvision{Version: wire.Version, Identity: m.id.Marshal(), Name: m.name, Sync: wire.Marshal(sync)}, nil
}

// InstallLinked sets up an empty store as a new device of the account id
// was given by linking: the identity, fresh prekeys of its own (a device
// answers initiations with its own prekeys), the account name, the device
// list and the contacts of sync. A contact whose card does not verify is
// skipped, never the whole install.
func InstallLinked(ctx context.Context, st *store.Store, id *keys.Identity, p *wirepb.LinkProvision, list *devices.List, rnd io.Reader) (skipped int, err error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	pk, err := handshake.NewPrekeys(rnd, id, DefaultOneTimePrekeys)
	if err != nil {
		return 0, err
	}
	var sync wirepb.LinkSync
	if len(p.Sync) > 0 {
		if err := wire.ParseLink(p.Sync, &sync); err != nil {
			return 0, fmt.Errorf("linked state: %w", err)
		}
	}
	acct := identity.AccountID(id.Public())
	err = st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.Blob(blobIdentity); err == nil {
			return store.ErrExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		for _, b := range [][2]any{{blobIdentity, id.Marshal()}, {blobPrekeys, pk.Marshal()}, {blobName, []byte(p.Name)}} {
			if err := tx.PutBlob(b[0].(string), b[1].([]byte)); err != nil {
				return err
			}
		}
		if err := devices.Save(tx, list); err != nil {
			return err
		}
		skipped = 0
		for _, sc := range sync.Contacts {
			card, err := identity.ParseSignedCard(sc.Card)
			if err != nil || card.AccountID() == acct || validName(sc.Name) != nil {
				skipped++
				continue
			}
			if _, err := tx.ContactByAccount(card.AccountID()); err == nil {
				continue
			}
			c := &store.Contact{AccountID: card.AccountID(), Verified: sc.Verified}
			applyCard(c, card, sc.Card)
			if c.Name, err = uniqueName(tx, sc.Name); err != nil {
				return err
			}
			if err := tx.AddContact(c); err != nil {
				return err
			}
		}
		for _, sg := range sync.Groups {
			if err := installGroup(tx, sg); err != nil {
				return err
			}
		}
		return nil
	})
	return skipped, err
}

// deviceIndex maps the peer ids of contacts' other devices (those their
// cards list beside the one stored as the contact's peer id) to the
// contact's account, so that an envelope from any linked device of a
// contact finds the contact. Built on first use, updated as cards are
// applied; a peer it does not know costs no store read.
type deviceIndex struct {
	mu    sync.Mutex
	built bool
	peers map[string]string // peer id → account id
	byAcc map[string][]string
	// dropped are devices a newer card of their account no longer lists
	// (revoked), so that what they send is refused as such (bounded).
	dropped map[string]string
}

const maxDropped = 1024

// note records the devices of an account's card.
func (d *deviceIndex) note(account string, card *identity.Card) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.built {
		return // the build reads every card anyway
	}
	d.noteLocked(account, card)
}

func (d *deviceIndex) noteLocked(account string, card *identity.Card) {
	for _, p := range d.byAcc[account] {
		delete(d.peers, p)
		if !card.HasDevice(p) {
			d.dropLocked(p, account)
		}
	}
	d.byAcc[account] = card.PeerIDs()
	for _, p := range d.byAcc[account] {
		d.peers[p] = account
		delete(d.dropped, p)
	}
}

func (d *deviceIndex) dropLocked(peer, account string) {
	if d.dropped == nil || len(d.dropped) >= maxDropped {
		d.dropped = map[string]string{}
	}
	d.dropped[peer] = account
}

// contactByDevice finds the contact one of whose linked devices is peer.
func (m *Messenger) contactByDevice(tx *store.Tx, peer string) (*store.Contact, error) {
	d := &m.devIdx
	d.mu.Lock()
	if !d.built {
		cs, err := tx.Contacts()
		if err != nil {
			d.mu.Unlock()
			return nil, err
		}
		d.peers, d.byAcc, d.built = map[string]string{}, map[string][]string{}, true
		for _, c := range cs {
			card, err := identity.ParseSignedCard(c.Card)
			if err != nil {
				continue
			}
			d.noteLocked(c.AccountID, card)
			if card.DeviceVersion == 0 {
				continue // never linked nor revoked a device
			}
			// A device we hold a session with that the card no longer
			// lists was revoked before this index was built (before a
			// restart, or before any envelope from a linked device): what
			// it sends is refused as such, not as a stranger's.
			peers, err := tx.DeviceSessionPeers(c.ID)
			if err != nil {
				d.built = false
				d.mu.Unlock()
				return nil, err
			}
			for _, p := range peers {
				if !card.HasDevice(p) {
					d.dropLocked(p, c.AccountID)
				}
			}
		}
	}
	acct, ok := d.peers[peer]
	gone, dropped := d.dropped[peer]
	d.mu.Unlock()
	if !ok && dropped {
		m.log.Info("revokedDeviceRefused", "contact", identity.Short(gone), "device", shortPeer(peer))
		return nil, permanent(ErrRevokedDevice)
	}
	if !ok {
		return nil, fmt.Errorf("device %s: %w", shortPeer(peer), store.ErrNotFound)
	}
	return tx.ContactByAccount(acct)
}

// checkSenderDevice refuses an envelope that came straight from a device
// (peer) of contact c which c's card does not list — revoked, or never
// linked — unless the envelope carries a card of c, at least as new, that
// lists it (a device linked since). On success the contact's replies go to
// that device, whose session just became the active one.
func (m *Messenger) checkSenderDevice(tx *store.Tx, c *store.Contact, card *identity.Card, peer string) error {
	held, err := identity.ParseSignedCard(c.Card)
	if err != nil || len(held.Devices) == 0 {
		return nil // nothing to hold it against (contact from an old card)
	}
	if !held.HasDevice(peer) && (card == nil || !card.HasDevice(peer) || identity.CheckDeviceVersion(held, card) != nil) {
		m.log.Info("revokedDeviceRefused", "contact", identity.Short(c.AccountID), "device", shortPeer(peer))
		return permanent(ErrRevokedDevice)
	}
	return nil
}

// followDevice notes the addresses of peer, a listed device of contact c
// that just wrote to us. Since fan-out (fanout.go) every device gets its
// own copy on its own session, so the contact's primary device stays as
// it is: switching it to the last writer would send the primary's queue
// on another device's session.
func (m *Messenger) followDevice(tx *store.Tx, c *store.Contact, peer string) error {
	if peer == "" || peer == c.PeerID || m.tr == nil {
		return nil
	}
	card, err := identity.ParseSignedCard(c.Card)
	if err != nil {
		return nil
	}
	for _, d := range card.Devices {
		if d.PeerID == peer {
			m.tr.AddAddrs(d.PeerID, d.Addrs)
		}
	}
	return nil
}

// installGroup stores a group handed over at linking: the members' keys
// (per device, groupdevices.go) as the linking device held them, and that
// device's own key. It has no sender key of its own yet: it makes one,
// and sends it to every device of every member and to our other devices,
// on its first message or membership change (ownSender).
func installGroup(tx *store.Tx, sg *wirepb.SyncGroup) error {
	if len(sg.Id) == 0 || len(sg.Secret) == 0 || len(sg.Name) > 200 {
		return nil
	}
	g := &store.Group{ID: sg.Id, Secret: sg.Secret, Name: sg.Name, Created: time.UnixMilli(sg.CreatedUnixMs)}
	if err := tx.AddGroup(g); errors.Is(err, store.ErrExists) {
		return nil
	} else if err != nil {
		return err
	}
	for _, op := range sg.Ops {
		h := sha256.Sum256(op)
		if _, err := tx.PutGroupOp(g.ID, h[:], op); err != nil {
			return err
		}
	}
	for _, k := range sg.Keys {
		if err := tx.PutGroupKey(g.ID, k.Member, k.Epoch, k.State); err != nil {
			return err
		}
	}
	return nil
}
