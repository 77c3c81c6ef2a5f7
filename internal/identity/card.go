package identity

import (
	"crypto/sha256"
	"errors"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/handshake"
	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// CardDomain separates card signatures from every other use of the key.
const CardDomain = "samizdat/card/v1"

// DefaultCardLifetime is how long a freshly issued card is valid.
const DefaultCardLifetime = 30 * 24 * time.Hour

// Errors about contact cards.
var (
	// ErrBadCard is returned when a card does not decode or is incomplete.
	ErrBadCard = errors.New("invalid contact card")
	// ErrBadSignature is returned when a card's signature does not verify.
	ErrBadSignature = errors.New("contact card signature does not verify")
)

// Device is one installation of an account, reachable at its addresses.
// Key and Signature are its certificate (see NewDevice): ParseSignedCard
// accepts a card only if every device's key certified it.
type Device struct {
	PeerID    string
	Addrs     []string
	Key       []byte // Ed25519 transport public key; PeerID derives from it
	Signature []byte // by Key over DeviceCertMessage(account, PeerID)
	Name      string // what the owner calls the device (not signed by it)
}

// MailboxHost is a node that keeps mail for the card's owner, under a
// mailbox id only the owner can fetch from.
type MailboxHost struct {
	PeerID string
	Addrs  []string
	ID     []byte // mailbox id (32 bytes)
}

// Limits of a card's mailbox list.
const (
	MaxMailboxHosts = 8
	MailboxIDSize   = 32
)

// Card is a contact card: what one needs to reach and encrypt to an
// account. Its wire form is signed by the account key.
type Card struct {
	Identity  keys.PublicIdentity
	Name      string
	Devices   []Device
	Mailboxes []MailboxHost
	// MeshMailbox is the mailbox id carriers file envelopes for this
	// account under in mesh mode (MailboxIDSize bytes), or nil.
	MeshMailbox []byte
	Bundle      *handshake.Bundle
	IssuedAt    time.Time
	ExpiresAt   time.Time
	Serial      uint64
	// DeviceVersion numbers the device list: linking or revoking a device
	// raises it; a contact refuses a card with a lower one than it holds
	// (CheckDeviceVersion).
	DeviceVersion uint64
}

// AccountID returns the id of the card's account.
func (c *Card) AccountID() string { return AccountID(c.Identity) }

// Expired reports whether the card is past its expiry at now.
func (c *Card) Expired(now time.Time) bool { return !c.ExpiresAt.IsZero() && now.After(c.ExpiresAt) }

// PeerIDs returns the peer ids of the card's devices.
func (c *Card) PeerIDs() []string {
	ids := make([]string, 0, len(c.Devices))
	for _, d := range c.Devices {
		ids = append(ids, d.PeerID)
	}
	return ids
}

func (c *Card) toWire() *wirepb.ContactCard {
	w := &wirepb.ContactCard{
		Version:       wire.Version,
		Identity:      c.Identity.Marshal(),
		Name:          c.Name,
		IssuedAtUnix:  c.IssuedAt.Unix(),
		ExpiresAtUnix: c.ExpiresAt.Unix(),
		Serial:        c.Serial,
		MeshMailboxId: c.MeshMailbox,
		DeviceVersion: c.DeviceVersion,
	}
	if c.Bundle != nil {
		w.PrekeyBundle = c.Bundle.Marshal()
	}
	for _, d := range c.Devices {
		w.Devices = append(w.Devices, DeviceToWire(d))
	}
	for _, mb := range c.Mailboxes {
		w.Mailboxes = append(w.Mailboxes, &wirepb.MailboxHost{PeerId: mb.PeerID, Addrs: mb.Addrs, MailboxId: mb.ID})
	}
	return w
}

// cardFromWire converts a wire card; keepOld drops the devices of a card
// from before device certificates instead of refusing it.
func cardFromWire(w *wirepb.ContactCard, keepOld bool) (*Card, error) {
	id, err := keys.ParsePublicIdentity(w.Identity)
	if err != nil {
		return nil, errorf(ErrBadCard, "identity: %v", err)
	}
	c := &Card{
		Identity:  id,
		Name:      w.Name,
		IssuedAt:  time.Unix(w.IssuedAtUnix, 0),
		ExpiresAt: time.Unix(w.ExpiresAtUnix, 0),
		Serial:    w.Serial,

		DeviceVersion: w.DeviceVersion,
	}
	if len(w.PrekeyBundle) > 0 {
		b, err := handshake.ParseBundle(w.PrekeyBundle)
		if err != nil {
			return nil, errorf(ErrBadCard, "prekey bundle: %v", err)
		}
		if !b.Identity.Equal(id) {
			return nil, errorf(ErrBadCard, "prekey bundle belongs to another identity")
		}
		c.Bundle = b
	}
	if len(w.Devices) > MaxDevices {
		return nil, errorf(ErrBadCard, "too many devices")
	}
	for _, d := range w.Devices {
		dev, err := DeviceFromWire(id, d)
		if err != nil {
			if keepOld && errors.Is(err, ErrOldCard) {
				continue
			}
			return nil, err
		}
		c.Devices = append(c.Devices, dev)
	}
	if len(w.Mailboxes) > MaxMailboxHosts {
		return nil, errorf(ErrBadCard, "too many mailbox hosts")
	}
	for _, mb := range w.Mailboxes {
		if mb.PeerId == "" || len(mb.MailboxId) != MailboxIDSize {
			return nil, errorf(ErrBadCard, "bad mailbox host")
		}
		c.Mailboxes = append(c.Mailboxes, MailboxHost{PeerID: mb.PeerId, Addrs: mb.Addrs, ID: mb.MailboxId})
	}
	if n := len(w.MeshMailboxId); n != 0 && n != MailboxIDSize {
		return nil, errorf(ErrBadCard, "bad mesh mailbox id")
	}
	c.MeshMailbox = w.MeshMailboxId
	if len(c.Name) > 200 {
		return nil, errorf(ErrBadCard, "name too long")
	}
	return c, nil
}

// SignCard returns the signed wire form of c, signed by id, which must be
// the identity the card describes.
func SignCard(id *keys.Identity, c *Card) ([]byte, error) {
	if !id.Public().Equal(c.Identity) {
		return nil, errorf(ErrBadCard, "card is not for this identity")
	}
	body := wire.Marshal(c.toWire())
	signed := &wirepb.SignedCard{Card: body, Signature: id.Sign(CardDomain, body)}
	out := wire.Marshal(signed)
	if len(out) > wire.MaxCardSize {
		return nil, errorf(ErrBadCard, "card too large (%d bytes)", len(out))
	}
	return out, nil
}

// ParseSignedCard decodes a signed card and verifies its signature against
// the identity it names and every device's certificate. It does not check
// expiry (see Card.Expired).
func ParseSignedCard(b []byte) (*Card, error) { return parseSignedCard(b, false) }

// ParseHistoricCard is ParseSignedCard for a card kept inside signed
// history that may predate device certificates (the card in a group op):
// such a card's uncertified devices are dropped, not the card refused.
// Never use it for a card that tells where to reach someone now.
func ParseHistoricCard(b []byte) (*Card, error) { return parseSignedCard(b, true) }

func parseSignedCard(b []byte, keepOld bool) (*Card, error) {
	key := cardKey{sha256.Sum256(b), keepOld}
	if c := cachedCard(key); c != nil {
		return c, nil
	}
	s, err := wire.ParseSignedCard(b)
	if err != nil {
		return nil, errorf(ErrBadCard, "%v", err)
	}
	w, err := wire.ParseCard(s.Card)
	if err != nil {
		return nil, errorf(ErrBadCard, "%v", err)
	}
	c, err := cardFromWire(w, keepOld)
	if err != nil {
		return nil, err
	}
	if !c.Identity.Verify(CardDomain, s.Card, s.Signature) {
		return nil, ErrBadSignature
	}
	cacheCard(key, c)
	return c, nil
}
