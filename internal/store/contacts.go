package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Contact is a person we can message.
type Contact struct {
	ID        int64  // assigned by AddContact
	AccountID string // unique, required
	Name      string // unique ignoring case (Unicode case folding, NFC), required
	Card      []byte // latest signed contact card (opaque)
	PeerID    string
	Addrs     []string // multiaddrs
	Verified  bool
	Created   time.Time // set to now by AddContact if zero
	// Request, when set, is when this account's first message arrived: a
	// stranger's pending contact request (requests.go), not a contact yet.
	Request time.Time
}

const contactColumns = `id, account_id, name, card, peer_id, addrs, verified, created, request`

func (c *Contact) check() error {
	if c.AccountID == "" {
		return fmt.Errorf("%w: contact without account id", ErrInvalid)
	}
	if strings.TrimSpace(c.Name) == "" {
		return fmt.Errorf("%w: contact without name", ErrInvalid)
	}
	return nil
}

func encodeAddrs(addrs []string) string {
	if len(addrs) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(addrs) // []string always marshals
	return string(b)
}

// AddContact inserts c and sets c.ID (and c.Created if zero). It returns
// ErrExists if the account id or the name is already taken.
func (tx *Tx) AddContact(c *Contact) error {
	if err := c.check(); err != nil {
		return err
	}
	created := c.Created
	if created.IsZero() {
		created = time.Now()
	}
	var id int64
	err := tx.queryRow(`INSERT INTO contacts
		(account_id, name, name_key, card, peer_id, addrs, verified, created, request)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		c.AccountID, c.Name, nameKey(c.Name), nonNil(c.Card), c.PeerID, encodeAddrs(c.Addrs),
		c.Verified, toNanos(created), toNanos(c.Request)).Scan(&id)
	if isUnique(err) {
		return fmt.Errorf("contact: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: add contact: %w", err)
	}
	c.ID = id
	c.Created = fromNanos(toNanos(created))
	return nil
}

// UpdateContact overwrites every field of the contact with c.ID. It returns
// ErrNotFound if there is none and ErrExists if the new account id or name
// belongs to another contact.
func (tx *Tx) UpdateContact(c *Contact) error {
	if err := c.check(); err != nil {
		return err
	}
	res, err := tx.exec(`UPDATE contacts SET account_id = ?, name = ?, name_key = ?, card = ?,
		peer_id = ?, addrs = ?, verified = ?, created = ?, request = ? WHERE id = ?`,
		c.AccountID, c.Name, nameKey(c.Name), nonNil(c.Card), c.PeerID, encodeAddrs(c.Addrs),
		c.Verified, toNanos(c.Created), toNanos(c.Request), c.ID)
	if isUnique(err) {
		return fmt.Errorf("contact %d: %w", c.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: update contact: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: update contact: %w", err)
	} else if n == 0 {
		return fmt.Errorf("contact %d: %w", c.ID, ErrNotFound)
	}
	return nil
}

// Contact returns the contact with the given id, or ErrNotFound.
func (tx *Tx) Contact(id int64) (*Contact, error) {
	return tx.contactWhere(`id = ?`, id)
}

// ContactByAccount returns the contact with the given account id, or ErrNotFound.
func (tx *Tx) ContactByAccount(accountID string) (*Contact, error) {
	return tx.contactWhere(`account_id = ?`, accountID)
}

// ContactByName returns the contact with the given name, ignoring case, or
// ErrNotFound.
func (tx *Tx) ContactByName(name string) (*Contact, error) {
	return tx.contactWhere(`name_key = ?`, nameKey(name))
}

// ContactByPeer returns the contact whose PeerID is peerID (the first added
// if several share it), or ErrNotFound.
func (tx *Tx) ContactByPeer(peerID string) (*Contact, error) {
	if peerID == "" {
		return nil, fmt.Errorf("contact of empty peer: %w", ErrNotFound)
	}
	return tx.contactWhere(`peer_id = ? ORDER BY id LIMIT 1`, peerID)
}

func (tx *Tx) contactWhere(where string, arg any) (*Contact, error) {
	row := tx.queryRow(`SELECT `+contactColumns+` FROM contacts WHERE `+where, arg)
	c, err := scanContact(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("contact: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: contact: %w", err)
	}
	return c, nil
}

// Contacts returns every contact ordered by name (case-insensitively);
// pending requests (Contact.Request set) are not contacts yet and are left
// out (see Requests).
func (tx *Tx) Contacts() ([]Contact, error) {
	return tx.contacts(`SELECT ` + contactColumns + ` FROM contacts WHERE request = 0 ORDER BY name_key, id`)
}

func (tx *Tx) contacts(q string, args ...any) ([]Contact, error) {
	rows, err := tx.query(q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: contacts: %w", err)
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			return nil, fmt.Errorf("store: contacts: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: contacts: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanContact(s scanner) (*Contact, error) {
	var (
		c       Contact
		addrs   string
		created int64
		request int64
	)
	if err := s.Scan(&c.ID, &c.AccountID, &c.Name, &c.Card, &c.PeerID, &addrs, &c.Verified, &created, &request); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(addrs), &c.Addrs); err != nil {
		return nil, fmt.Errorf("contact %d addrs: %w", c.ID, err)
	}
	if len(c.Addrs) == 0 {
		c.Addrs = nil
	}
	if len(c.Card) == 0 {
		c.Card = nil
	}
	c.Created = fromNanos(created)
	c.Request = fromNanos(request)
	return &c, nil
}
