package media

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Files for an offline recipient (issue 16): when the recipient of a file
// is not reachable, its sender deposits the chunks (index and data) at the
// recipient's mailbox hosts, each in a deposit blob: the sealed chunk with
// a 4-byte length, padded to MaxSealedChunk and sealed again under a key
// derived from the file key (XChaCha20-Poly1305, the chunk's hash as
// nonce and associated data), BlobSize bytes whatever the chunk. A host
// sees how many chunks a file has and nothing else: not their sizes, not
// their hashes (a blob is filed under an HMAC of the chunk hash keyed by
// the file key, so it cannot be matched with the chunks other holders
// serve), not their content (the keys travel only in the end-to-end
// encrypted message). The recipient computes the same ids from the
// manifest, gets the blobs from its hosts as one more source, opens each
// and checks the chunk's hash as for any source, and deletes the blobs
// once the file is complete.

// BlobSize is the size of every deposit blob (mailbox.BlobSize).
const BlobSize = 4 + MaxSealedChunk + chacha20poly1305.Overhead

// Both sides must agree on the size (a negative constant does not
// convert to uint: the build fails if they differ).
const _ = uint(BlobSize-mailbox.BlobSize) + uint(mailbox.BlobSize-BlobSize)

// Host states of a file we sent (Transfer.HostState).
const (
	// HostDepositing: the recipient was not reachable; its chunks are on
	// their way to the recipient's mailbox hosts.
	HostDepositing = "depositing"
	// HostDeposited: every chunk is at one of the recipient's hosts at
	// least: the recipient gets the file without us.
	HostDeposited = "deposited"
	// HostOverQuota: the recipient's hosts refused the file (over their
	// quotas): it waits here, served to the recipient when both of us are
	// online (tried again later).
	HostOverQuota = "over-quota"
)

// HostBlobs reaches the blobs kept for us at our own mailbox hosts (the
// messenger implements it over mailbox.BlobConn).
type HostBlobs interface {
	// GetBlobs gets what our hosts hold of ids, calling got for each blob
	// (got returns an error for a blob that does not open: another host
	// may hold a good one).
	GetBlobs(ctx context.Context, ids []Hash, got func(i int, blob []byte) error) error
	// DeleteBlobs deletes ids at our hosts (best effort).
	DeleteBlobs(ctx context.Context, ids []Hash)
}

const (
	depositInfo = "samizdat/media-deposit/v1"
	depositIDs  = "samizdat/media-deposit-id/v1"
)

// depositKeys derives the sealing key and the id key of a file's deposit
// blobs from its key.
func depositKeys(m *Manifest) (seal, id []byte) {
	k, err := hkdf.Key(sha256.New, m.Key[:], nil, depositInfo, 2*chacha20poly1305.KeySize)
	if err != nil {
		panic(err) // only for lengths beyond HKDF's limit
	}
	return k[:chacha20poly1305.KeySize], k[chacha20poly1305.KeySize:]
}

// DepositID is the id a deposit blob of chunk h of m is filed under.
func DepositID(m *Manifest, h Hash) Hash {
	_, idKey := depositKeys(m)
	return depositID(idKey, h)
}

func depositID(idKey []byte, h Hash) Hash {
	mac := hmac.New(sha256.New, idKey)
	mac.Write([]byte(depositIDs))
	mac.Write(h[:])
	var out Hash
	mac.Sum(out[:0])
	return out
}

// SealDeposit makes the deposit blob of sealed chunk b, whose hash is h.
func SealDeposit(m *Manifest, h Hash, b []byte) ([]byte, error) {
	if len(b) > MaxSealedChunk {
		return nil, fmt.Errorf("media: chunk of %d bytes", len(b))
	}
	sealKey, _ := depositKeys(m)
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, 4+MaxSealedChunk, BlobSize)
	binary.BigEndian.PutUint32(plain, uint32(len(b)))
	copy(plain[4:], b)
	return aead.Seal(plain[:0], h[:chacha20poly1305.NonceSizeX], plain, h[:]), nil
}

// OpenDeposit opens deposit blob blob of chunk h and checks the chunk
// against h (ErrCorruptChunk if anything is wrong).
func OpenDeposit(m *Manifest, h Hash, blob []byte) ([]byte, error) {
	if len(blob) != BlobSize {
		return nil, fmt.Errorf("%w: blob of %d bytes", ErrCorruptChunk, len(blob))
	}
	sealKey, _ := depositKeys(m)
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, h[:chacha20poly1305.NonceSizeX], blob, h[:])
	if err != nil {
		return nil, fmt.Errorf("%w: blob does not open", ErrCorruptChunk)
	}
	n := binary.BigEndian.Uint32(plain)
	if n > MaxSealedChunk {
		return nil, fmt.Errorf("%w: bad length", ErrCorruptChunk)
	}
	b := plain[4 : 4+n]
	if sha256.Sum256(b) != h {
		return nil, ErrCorruptChunk
	}
	return b, nil
}

// Deposit lists the deposit blobs of the file m sent from here: their ids
// (index chunks first) and a function that makes the i-th.
func (s *Service) Deposit(m *Manifest) (ids []Hash, blob func(i int) ([]byte, error), err error) {
	data, err := LoadIndex(s.ch, m)
	if err != nil {
		return nil, nil, err
	}
	hs := append(slices.Clone(m.Index), data...)
	_, idKey := depositKeys(m)
	ids = make([]Hash, len(hs))
	for i, h := range hs {
		ids[i] = depositID(idKey, h)
	}
	return ids, func(i int) ([]byte, error) {
		b, err := s.ch.Get(hs[i])
		if err != nil {
			return nil, err
		}
		return SealDeposit(m, hs[i], b)
	}, nil
}

// SetHostBlobs gives the service our mailbox hosts' blobs as a source of
// incoming files (nil: none).
func (s *Service) SetHostBlobs(h HostBlobs) {
	s.mu.Lock()
	s.hostBlobs = h
	s.mu.Unlock()
}

func (s *Service) hostSource() HostBlobs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostBlobs
}

// hostRetry is how long after our hosts held nothing of a file they are
// not asked again (each ask is a stream per host and mailbox id).
const hostRetry = 5 * time.Minute

// fetchHosted brings what our hosts hold of the file of r (first the
// index, then the data) into the chunk store.
func (s *Service) fetchHosted(ctx context.Context, r record, m *Manifest) {
	hb := s.hostSource()
	if hb == nil || r.Group != "" {
		return
	}
	s.mu.Lock()
	last, tried := s.hostTried[r.MessageID]
	s.mu.Unlock()
	if tried && time.Since(last) < hostRetry {
		return
	}
	get := func(hs []Hash, got func()) {
		var want []Hash
		for _, h := range hs {
			if !s.ch.Has(h) {
				want = append(want, h)
			}
		}
		if len(want) == 0 {
			return
		}
		_, idKey := depositKeys(m)
		ids := make([]Hash, len(want))
		for i, h := range want {
			ids[i] = depositID(idKey, h)
		}
		err := hb.GetBlobs(ctx, ids, func(i int, blob []byte) error {
			if s.ch.Has(want[i]) {
				return nil
			}
			b, err := OpenDeposit(m, want[i], blob)
			if err != nil {
				return err
			}
			if err := s.ch.Put(want[i], b); err != nil {
				return err
			}
			got()
			return nil
		})
		if err != nil && ctx.Err() == nil {
			s.log.Debug("media: hosts gave no file", "msg", r.MessageID[:min(8, len(r.MessageID))], "err", err)
		}
	}
	get(m.Index, func() {})
	hashes, missing, err := Missing(s.ch, m)
	if err != nil {
		s.mu.Lock()
		if s.hostTried == nil {
			s.hostTried = map[string]time.Time{}
		}
		s.hostTried[r.MessageID] = time.Now()
		s.mu.Unlock()
		return
	}
	if len(missing) == 0 {
		return
	}
	want := make([]Hash, len(missing))
	for i, n := range missing {
		want[i] = hashes[n]
	}
	total, done := len(hashes), len(hashes)-len(missing)
	get(want, func() {
		done++
		s.setProg(r.MessageID, progress{done: done, total: total, state: StateFetching})
	})
}

// deleteHosted deletes at our hosts the blobs of a file now complete.
func (s *Service) deleteHosted(ctx context.Context, r record, m *Manifest) {
	hb := s.hostSource()
	if hb == nil || r.Group != "" {
		return
	}
	data, err := LoadIndex(s.ch, m)
	if err != nil {
		return
	}
	_, idKey := depositKeys(m)
	var ids []Hash
	for _, h := range append(slices.Clone(m.Index), data...) {
		ids = append(ids, depositID(idKey, h))
	}
	hb.DeleteBlobs(ctx, ids)
}

// Outgoing is a file we sent to one contact, as listed by ToDeposit.
type Outgoing struct {
	MessageID string
	ContactID int64
	Manifest  *Manifest
	HostState string
}

// ToDeposit lists the files we sent to contacts (not groups) that are not
// deposited at their recipient's hosts yet.
func (s *Service) ToDeposit(ctx context.Context) ([]Outgoing, error) {
	var recs []record
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) (err error) {
		recs, err = allRecords(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []Outgoing
	for _, r := range recs {
		if r.Incoming || r.Group != "" || r.HostState == HostDeposited || r.HostSkip {
			continue
		}
		m, err := ParseManifest(r.Manifest)
		if err != nil {
			continue
		}
		out = append(out, Outgoing{MessageID: r.MessageID, ContactID: r.ContactID, Manifest: m, HostState: r.HostState})
	}
	return out, nil
}

// SkipDeposit marks a file we sent as needing no deposit (its recipient
// has the message: it fetches from us), so ToDeposit leaves it out.
func (s *Service) SkipDeposit(ctx context.Context, msgID string) error {
	return s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		r, err := getRecord(tx, msgID)
		if err != nil || r.Incoming || r.HostSkip {
			return err
		}
		r.HostSkip = true
		return putRecord(tx, r)
	})
}

// SetHostState records where a file we sent stands with its recipient's
// hosts (one of the Host* states), and why if it waits (errText).
func (s *Service) SetHostState(ctx context.Context, msgID, state, errText string) error {
	return s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		r, err := getRecord(tx, msgID)
		if err != nil {
			return err
		}
		if r.Incoming {
			return errors.New("media: not a file we sent")
		}
		r.HostState, r.HostError = state, errText
		return putRecord(tx, r)
	})
}
