package mesh

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
)

// Domain separation strings of the mesh's signatures and derived ids.
const (
	ownerDomain     = "samizdat/mesh-owner/v1"
	receiptDomain   = "samizdat/mesh-receipt/v1"
	receiptIDDomain = "samizdat/mesh-receipt-id/v1"
)

// MaxProofAge is how far an ownership proof's time may be from ours.
const MaxProofAge = 10 * time.Minute

// ownerMessage is what a mailbox owner (the prover) signs to take its items
// from a neighbour (the verifier): bound to both peer ids (authenticated by
// the transport), so the proof is worthless to anyone else and at any
// other peer.
func ownerMessage(verifier, prover string, id mailbox.ID, unix int64) []byte {
	m := make([]byte, 0, len(ownerDomain)+len(verifier)+len(prover)+2+mailbox.IDSize+8)
	m = append(m, ownerDomain...)
	// Peer ids vary in length: length-prefix them (one byte: peer ids are
	// far shorter than 256 bytes, checked by the caller).
	m = append(m, byte(len(verifier)))
	m = append(m, verifier...)
	m = append(m, byte(len(prover)))
	m = append(m, prover...)
	m = append(m, id[:]...)
	return binary.BigEndian.AppendUint64(m, uint64(unix))
}

func signOwner(key ed25519.PrivateKey, verifier, prover string, unix int64) (pub ed25519.PublicKey, sig []byte) {
	pub = key.Public().(ed25519.PublicKey)
	return pub, ed25519.Sign(key, ownerMessage(verifier, prover, mailbox.IDFromPublicKey(pub), unix))
}

func verifyOwner(verifier, prover string, pub []byte, unix int64, sig []byte, now time.Time) (mailbox.ID, bool) {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || len(verifier) > 255 || len(prover) > 255 {
		return mailbox.ID{}, false
	}
	if d := now.Sub(time.Unix(unix, 0)); d > MaxProofAge || d < -MaxProofAge {
		return mailbox.ID{}, false
	}
	id := mailbox.IDFromPublicKey(pub)
	if !ed25519.Verify(pub, ownerMessage(verifier, prover, id, unix), sig) {
		return mailbox.ID{}, false
	}
	return id, true
}

func receiptMessage(id mailbox.ID, h mailbox.Hash) []byte {
	m := make([]byte, 0, len(receiptDomain)+mailbox.IDSize+mailbox.HashSize)
	m = append(m, receiptDomain...)
	m = append(m, id[:]...)
	return append(m, h[:]...)
}

// receiptID is the id under which a receipt for envelope h is reconciled:
// distinct from h, so that a peer holding the envelope and one holding its
// receipt see different ids.
func receiptID(h mailbox.Hash) mailbox.Hash {
	s := sha256.New()
	s.Write([]byte(receiptIDDomain))
	s.Write(h[:])
	var out mailbox.Hash
	s.Sum(out[:0])
	return out
}

// verifyReceipt checks that pub owns mailbox id and signed the receipt.
func verifyReceipt(id mailbox.ID, h mailbox.Hash, pub, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	if mailbox.IDFromPublicKey(pub) != id {
		return false
	}
	return ed25519.Verify(pub, receiptMessage(id, h), sig)
}
