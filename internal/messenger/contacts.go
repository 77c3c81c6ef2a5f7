package messenger

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/samizdat-im/samizdat/internal/crypto/keys"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
)

// AccountIDOf returns the account id of an identity.
func AccountIDOf(id *keys.Identity) string { return identity.AccountID(id.Public()) }

// ContactInfo is a contact as shown to users and the API.
type ContactInfo struct {
	ID           int64    `json:"id"`
	Name         string   `json:"name"`
	AccountID    string   `json:"accountId"`
	PeerID       string   `json:"peerId"`
	Addrs        []string `json:"addrs"`
	Verified     bool     `json:"verified"`
	SafetyNumber string   `json:"safetyNumber"`
}

func (m *Messenger) contactInfo(c *store.Contact) ContactInfo {
	ci := ContactInfo{ID: c.ID, Name: c.Name, AccountID: c.AccountID, PeerID: c.PeerID, Addrs: c.Addrs, Verified: c.Verified}
	if ci.Addrs == nil {
		ci.Addrs = []string{}
	}
	if card, err := identity.ParseSignedCard(c.Card); err == nil {
		ci.SafetyNumber = identity.SafetyNumber(m.id.Public(), card.Identity)
	}
	return ci
}

// Invite returns a samizdat: link carrying a fresh signed contact card and
// a one-time secret (remembered for ShortInviteLifetime): whoever adds us
// from it proves the secret in its first message and becomes a contact at
// once, not a stranger's request (requests.go). The secret is kept while
// the card stays the same, so the link does too (as it did before it had
// one); a new card (new addresses, half its lifetime gone) gets a new one.
func (m *Messenger) Invite(ctx context.Context) (string, error) {
	card, err := m.card(ctx)
	if err != nil {
		return "", err
	}
	_, serial := m.currentCard()
	secret, err := m.longInviteSecret(ctx, serial)
	if err != nil {
		return "", err
	}
	return identity.EncodeInvite(card, secret)
}

// card returns this account's signed contact card, re-signed when the
// node's addresses changed or it is half-way to expiry.
func (m *Messenger) card(ctx context.Context) ([]byte, error) {
	peerID, addrs := m.cfg.PeerID, []string(nil)
	if m.tr != nil {
		peerID, addrs = m.tr.PeerID(), transportAddrs(m.tr.Addrs())
	} else {
		_ = m.st.View(ctx, func(tx *store.Tx) error {
			b, err := tx.Blob(blobAddrs)
			if err == nil {
				addrs = splitLines(string(b))
			}
			return nil
		})
	}
	key := peerID + "\n" + joinLines(addrs)
	cached := func() []byte {
		if m.ownCard != nil && m.cardAddr == key && m.now().Before(m.cardIssued.Add(identity.DefaultCardLifetime/2)) {
			return m.ownCard
		}
		return nil
	}
	m.cardMu.Lock()
	c := cached()
	m.cardMu.Unlock()
	if c != nil {
		return c, nil
	}
	// A new card, one at a time (rotateMu): the moment to move to a new
	// mailbox id, stored before the card names it — not under cardMu,
	// which transactions take.
	m.rotateMu.Lock()
	defer m.rotateMu.Unlock()
	m.cardMu.Lock()
	c = cached() // made meanwhile by another caller
	m.cardMu.Unlock()
	if c != nil {
		return c, nil
	}
	if err := m.maybeRotateMailbox(ctx); err != nil {
		return nil, err
	}
	m.meshOwnKeys() // carriers may bring mail for the new id at once
	dev, err := m.device(peerID, addrs)
	if err != nil {
		return nil, err
	}
	devs, devVersion := m.cardDevices(ctx, dev) // read before cardMu, which transactions take
	m.cardMu.Lock()
	defer m.cardMu.Unlock()
	m.prekeyMu.Lock()
	bundle := m.prekeys.Bundle(false)
	m.prekeyMu.Unlock()
	now := m.now()
	card := &identity.Card{
		Identity:  m.id.Public(),
		Name:      m.name,
		Devices:   devs,
		Mailboxes: m.cardMailboxes(),
		Bundle:    bundle,
		// The mesh files our mail under our mailbox id too.
		MeshMailbox: m.meshMailboxID(),
		IssuedAt:    now,
		ExpiresAt:   now.Add(identity.DefaultCardLifetime),
		Serial:      uint64(now.UnixNano()),

		DeviceVersion: devVersion,
	}
	signed, err := identity.SignCard(m.id, card)
	if err != nil {
		return nil, err
	}
	m.ownCard, m.cardAddr, m.cardIssued, m.cardSerial = signed, key, now, card.Serial
	m.cardChangedNotify()
	return signed, nil
}

// deviceSigner is what a transport offers to certify this device in our
// card (*p2p.Node has it).
type deviceSigner interface {
	DeviceKey() ed25519.PublicKey
	SignDevice(msg []byte) ([]byte, error)
}

// device returns this device's card entry, certified by its transport key
// (the transport's, or Config.DeviceKey offline).
func (m *Messenger) device(peerID string, addrs []string) (identity.Device, error) {
	if ds, ok := m.tr.(deviceSigner); ok {
		return identity.NewDevice(m.id.Public(), ds.DeviceKey(), addrs, ds.SignDevice)
	}
	if k := m.cfg.DeviceKey; k != nil {
		return identity.NewDevice(m.id.Public(), k.Public().(ed25519.PublicKey), addrs, func(msg []byte) ([]byte, error) {
			return ed25519.Sign(k, msg), nil
		})
	}
	return identity.Device{}, fmt.Errorf("%w: no device key to certify this device (peer %s)", identity.ErrBadCard, peerID)
}

// currentCard returns our last signed card and its serial (nil before the
// first card() call). It does no I/O, so it may run in a transaction.
func (m *Messenger) currentCard() ([]byte, uint64) {
	m.cardMu.Lock()
	defer m.cardMu.Unlock()
	return m.ownCard, m.cardSerial
}

// blobCardSent names the blob holding the serial of the last card of ours
// a contact was sent.
func blobCardSent(cid int64) string { return "cardsent." + strconv.FormatInt(cid, 10) }

// attachCard puts our current card in p if contact cid has not been sent
// it yet (our card changed: new addresses or a new mailbox id), so that
// contacts follow our changes with our next message or ack to them.
func (m *Messenger) attachCard(tx *store.Tx, cid int64, p *wirepb.Payload) error {
	if len(p.SenderCard) > 0 {
		return m.markCardSent(tx, cid)
	}
	card, serial := m.currentCard()
	if card == nil {
		return nil
	}
	m.cardSentMu.Lock()
	known := m.cardSent[cid] == serial
	m.cardSentMu.Unlock()
	if known {
		return nil
	}
	b, err := tx.Blob(blobCardSent(cid))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if len(b) == 8 && binary.BigEndian.Uint64(b) == serial {
		// Only what is committed is remembered: a write below may roll
		// back with its transaction.
		m.cardSentMu.Lock()
		if m.cardSent == nil {
			m.cardSent = map[int64]uint64{}
		}
		m.cardSent[cid] = serial
		m.cardSentMu.Unlock()
		return nil
	}
	p.SenderCard = card
	return tx.PutBlob(blobCardSent(cid), binary.BigEndian.AppendUint64(nil, serial))
}

// markCardSent records that contact cid got our current card.
func (m *Messenger) markCardSent(tx *store.Tx, cid int64) error {
	_, serial := m.currentCard()
	return tx.PutBlob(blobCardSent(cid), binary.BigEndian.AppendUint64(nil, serial))
}

// AddContact adds the account behind an invite link (long, or short: then
// its card is fetched first, see shortinvite.go). name overrides the
// name on the card; if the account is already a contact, its card is
// updated (and renamed when name is given).
func (m *Messenger) AddContact(ctx context.Context, link, name string) (ContactInfo, error) {
	inv, err := m.parseInviteLink(ctx, link)
	if err != nil {
		return ContactInfo{}, err
	}
	if inv.AccountID == m.acct {
		return ContactInfo{}, ErrSelf
	}
	if inv.Card.Expired(m.now()) {
		return ContactInfo{}, fmt.Errorf("%w: the invite has expired; ask for a new one", identity.ErrBadInvite)
	}
	name = strings.TrimSpace(name)
	if err := validName(name); err != nil {
		return ContactInfo{}, err
	}
	var out *store.Contact
	var events []Event
	err = m.st.Update(ctx, m.thenSyncContact(&out, func(tx *store.Tx) error { // devsync.go
		events = nil
		if len(inv.Card.Devices) > 0 {
			other, err := tx.ContactByPeer(inv.Card.Devices[0].PeerID)
			if err == nil && other.AccountID != inv.AccountID {
				// The invite's card proves the device (its key certified it
				// for this account). A contact whose own card does not
				// prove it made a false claim (a card from before device
				// certificates): the device is taken from it rather than
				// the real owner refused.
				if provesDevice(other.Card, other.PeerID) {
					return fmt.Errorf("%w: the invite names a device of another contact (%s)", identity.ErrBadInvite, other.Name)
				}
				m.log.Warn("deviceClaimReleased", "contact", identity.Short(other.AccountID), "owner", identity.Short(inv.AccountID))
				other.PeerID, other.Addrs = "", nil
				if err := tx.UpdateContact(other); err != nil {
					return err
				}
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		c, err := tx.ContactByAccount(inv.AccountID)
		if err == nil && !c.Request.IsZero() {
			// Their request is pending: adding them accepts it.
			applyCard(c, inv.Card, inv.SignedCard)
			if events, err = m.promote(tx, c, name); err != nil {
				return err
			}
			out = c
			return m.keepInviteProof(tx, c.ID, inv)
		}
		switch {
		case err == nil:
			if held, err := identity.ParseSignedCard(c.Card); err == nil {
				if err := identity.CheckDeviceVersion(held, inv.Card); err != nil {
					return fmt.Errorf("%w: %w", identity.ErrBadInvite, err)
				}
			}
			applyCard(c, inv.Card, inv.SignedCard)
			if name != "" && name != c.Name {
				if other, err := tx.ContactByName(name); err == nil && other.ID != c.ID {
					return fmt.Errorf("%w: the name %q is already used by another contact", store.ErrExists, name)
				}
				c.Name = name
			}
			out = c
			if err := m.keepInviteProof(tx, c.ID, inv); err != nil {
				return err
			}
			return tx.UpdateContact(c)
		case errors.Is(err, store.ErrNotFound):
			c = &store.Contact{AccountID: inv.AccountID, Created: m.now()}
			applyCard(c, inv.Card, inv.SignedCard)
			if name != "" {
				if _, err := tx.ContactByName(name); err == nil {
					return fmt.Errorf("%w: the name %q is already used by another contact", store.ErrExists, name)
				}
				c.Name = name
			} else if c.Name, err = uniqueName(tx, inv.Card.Name); err != nil {
				return err
			}
			out = c
			if err := tx.AddContact(c); err != nil {
				return err
			}
			return m.keepInviteProof(tx, c.ID, inv)
		default:
			return err
		}
	}))
	if err != nil {
		return ContactInfo{}, err
	}
	if m.tr != nil && out.PeerID != "" {
		m.tr.AddAddrs(out.PeerID, out.Addrs)
	}
	m.devIdx.note(out.AccountID, inv.Card)
	for _, e := range events {
		m.emit(e)
	}
	if len(events) == 0 {
		m.emit(Event{Type: EventContact, ContactID: out.ID})
	}
	m.claimSoon(out.ID) // one-time prekeys for our first session (prekeys.go)
	m.wake()
	return m.contactInfo(out), nil
}

// provesDevice reports whether a signed card certifies device peer.
func provesDevice(signed []byte, peer string) bool {
	card, err := identity.ParseSignedCard(signed)
	if err != nil {
		return false
	}
	return slices.Contains(card.PeerIDs(), peer)
}

func validName(name string) error {
	if len(name) > 100 {
		return errors.New("contact name is too long (100 bytes at most)")
	}
	if strings.ContainsAny(name, "\n\r\t") {
		return errors.New("contact name must be on one line")
	}
	return nil
}

func applyCard(c *store.Contact, card *identity.Card, signed []byte) {
	c.Card = signed
	// The primary device (fanout.go) stays while the card lists it: its
	// session and queue are the contact's; a card from another device of
	// the account lists that device first.
	for _, d := range card.Devices {
		if d.PeerID == c.PeerID && c.PeerID != "" {
			c.Addrs = d.Addrs
			return
		}
	}
	if len(card.Devices) > 0 {
		c.PeerID = card.Devices[0].PeerID
		c.Addrs = card.Devices[0].Addrs
	}
}

// uniqueName picks a free contact name based on the name a card suggests.
func uniqueName(tx *store.Tx, suggested string) (string, error) {
	base := CleanName(suggested)
	if base == "" {
		base = "contact"
	}
	name := base
	for i := 2; ; i++ {
		_, err := tx.ContactByName(name)
		if errors.Is(err, store.ErrNotFound) {
			return name, nil
		} else if err != nil {
			return "", err
		}
		name = fmt.Sprintf("%s (%d)", base, i)
	}
}

// Contacts lists the contacts, by name.
func (m *Messenger) Contacts(ctx context.Context) ([]ContactInfo, error) {
	var out []ContactInfo
	err := m.st.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.Contacts()
		for i := range cs {
			out = append(out, m.contactInfo(&cs[i]))
		}
		return err
	})
	if out == nil {
		out = []ContactInfo{}
	}
	return out, err
}

// resolve finds a contact by account id or (case-insensitive) name.
func resolve(tx *store.Tx, ref string) (*store.Contact, error) {
	ref = strings.TrimSpace(ref)
	if _, err := identity.ParseAccountID(ref); err == nil {
		c, err := tx.ContactByAccount(strings.ToLower(ref))
		if errors.Is(err, store.ErrNotFound) || (err == nil && !c.Request.IsZero()) {
			// A pending request is no contact (see samizdat requests).
			return nil, fmt.Errorf("%w: %s", ErrUnknownContact, identity.Short(ref))
		}
		return c, err
	}
	c, err := tx.ContactByName(ref)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.Request.IsZero()) {
		return nil, fmt.Errorf("%w named %q (see samizdat contacts)", ErrUnknownContact, ref)
	}
	return c, err
}

// Contact returns one contact by name or account id.
func (m *Messenger) Contact(ctx context.Context, ref string) (ContactInfo, error) {
	var out ContactInfo
	err := m.st.View(ctx, func(tx *store.Tx) error {
		c, err := resolve(tx, ref)
		if err == nil {
			out = m.contactInfo(c)
		}
		return err
	})
	return out, err
}

// maxNameRunes bounds names taken from cards.
const maxNameRunes = 60

// CleanName makes a name from someone else's card safe to store and show:
// control characters (terminal escapes, line breaks, bidi overrides) are
// dropped, spaces collapsed, and it is cut to maxNameRunes characters.
func CleanName(s string) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			continue
		}
		if n == maxNameRunes {
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// transportAddrs drops the /p2p/<id> suffix the network adds to its
// addresses: the card names the device once, and invites stay short.
func transportAddrs(addrs []string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		// Only the last /p2p/ names the peer itself: a relayed address
		// (…/p2p/<relay>/p2p-circuit/p2p/<peer>) keeps its relay.
		if i := strings.LastIndex(a, "/p2p/"); i > 0 {
			a = a[:i]
		}
		out = append(out, a)
	}
	return out
}

func joinLines(s []string) string { return strings.Join(s, "\n") }

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
