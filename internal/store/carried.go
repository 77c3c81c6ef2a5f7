package store

import (
	"fmt"
	"strings"
	"time"
)

// CarriedItem is one envelope (or receipt) a mesh carrier holds for others
// (internal/mesh). Envelope is nil for a receipt, whose Receipt* fields are
// set.
type CarriedItem struct {
	ID, Mailbox []byte
	Hops        int
	Expires     time.Time // whole seconds
	Arrived     int64     // arrival order
	From        string    // the neighbour it came from
	Hosts       []string  // the recipient's mailbox hosts
	Envelope    []byte
	ReceiptHash []byte
	ReceiptKey  []byte
	ReceiptSig  []byte
}

const carriedColumns = `id, mailbox, hops, expires, arrived, from_peer, hosts, envelope, receipt_hash, receipt_key, receipt_sig`

// PutCarried stores it, replacing an item of the same id.
func (tx *Tx) PutCarried(it CarriedItem) error {
	if len(it.ID) == 0 || len(it.Mailbox) == 0 {
		return fmt.Errorf("%w: carried item without id or mailbox", ErrInvalid)
	}
	var env any // NULL for a receipt
	if it.Envelope != nil {
		env = it.Envelope
	}
	_, err := tx.exec(`INSERT INTO mesh_carried (`+carriedColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET mailbox = excluded.mailbox, hops = excluded.hops, expires = excluded.expires,
		arrived = excluded.arrived, from_peer = excluded.from_peer, hosts = excluded.hosts, envelope = excluded.envelope,
		receipt_hash = excluded.receipt_hash, receipt_key = excluded.receipt_key, receipt_sig = excluded.receipt_sig`,
		it.ID, it.Mailbox, it.Hops, it.Expires.Unix(), it.Arrived, it.From, strings.Join(it.Hosts, "\n"), env,
		nonNil(it.ReceiptHash), nonNil(it.ReceiptKey), nonNil(it.ReceiptSig))
	if err != nil {
		return fmt.Errorf("store: put carried: %w", err)
	}
	return nil
}

// DeleteCarried deletes the item of id; a missing one is not an error.
func (tx *Tx) DeleteCarried(id []byte) error {
	if _, err := tx.exec(`DELETE FROM mesh_carried WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: delete carried: %w", err)
	}
	return nil
}

// CarriedItems returns every carried item in arrival order.
func (tx *Tx) CarriedItems() ([]CarriedItem, error) {
	rows, err := tx.query(`SELECT ` + carriedColumns + ` FROM mesh_carried ORDER BY arrived`)
	if err != nil {
		return nil, fmt.Errorf("store: carried items: %w", err)
	}
	defer rows.Close()
	var out []CarriedItem
	for rows.Next() {
		var it CarriedItem
		var expires int64
		var hosts string
		if err := rows.Scan(&it.ID, &it.Mailbox, &it.Hops, &expires, &it.Arrived, &it.From, &hosts, &it.Envelope,
			&it.ReceiptHash, &it.ReceiptKey, &it.ReceiptSig); err != nil {
			return nil, fmt.Errorf("store: carried items: %w", err)
		}
		it.Expires = time.Unix(expires, 0)
		if hosts != "" {
			it.Hosts = strings.Split(hosts, "\n")
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: carried items: %w", err)
	}
	return out, nil
}
