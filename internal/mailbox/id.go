package mailbox

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Protocol is the stream protocol id of the mailbox service.
const Protocol = "/samizdat/mailbox/1"

// Sizes on the wire.
const (
	IDSize        = sha256.Size           // a mailbox id
	HashSize      = sha256.Size           // an envelope hash
	NonceSize     = 32                    // a fetch challenge
	PublicKeySize = ed25519.PublicKeySize // a mailbox public key
	SignatureSize = ed25519.SignatureSize // a fetch proof
)

// Domain separation strings of the mailbox id and the fetch proof.
const (
	idDomain    = "samizdat/mailbox-id/v1"
	proofDomain = "samizdat/mailbox-fetch/v1"
)

// ID is a mailbox id: SHA-256("samizdat/mailbox-id/v1" || public key).
type ID [IDSize]byte

// Hash is the SHA-256 of an envelope, by which hosts dedupe and owners
// delete.
type Hash [HashSize]byte

// IDFromPublicKey returns the mailbox id of an Ed25519 mailbox public key.
func IDFromPublicKey(pub ed25519.PublicKey) ID {
	h := sha256.New()
	h.Write([]byte(idDomain))
	h.Write(pub)
	var id ID
	h.Sum(id[:0])
	return id
}

// KeyID returns the mailbox id of a mailbox private key.
func KeyID(key ed25519.PrivateKey) ID {
	return IDFromPublicKey(key.Public().(ed25519.PublicKey))
}

// NewKey generates a fresh mailbox key pair. Owners make a new one whenever
// they want a new, unlinkable mailbox id.
func NewKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mailbox: generate key: %w", err)
	}
	return priv, nil
}

// HashEnvelope returns the hash a host files an envelope under.
func HashEnvelope(envelope []byte) Hash {
	return sha256.Sum256(envelope)
}

// Short is a prefix of the id for logs: enough to tell ids apart in one
// log, too short to follow a mailbox across hosts' logs with certainty.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// String is the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// proofMessage is what the owner signs to fetch: the domain, the host's
// peer id (so a proof for one host is worthless at another), the host's
// one-time nonce and the mailbox id. Only the peer id varies in length, and
// it is followed by fixed-size fields, so the encoding is unambiguous.
func proofMessage(serverPeerID string, nonce []byte, id ID) []byte {
	m := make([]byte, 0, len(proofDomain)+len(serverPeerID)+NonceSize+IDSize)
	m = append(m, proofDomain...)
	m = append(m, serverPeerID...)
	m = append(m, nonce...)
	return append(m, id[:]...)
}

// signProof answers a challenge.
func signProof(key ed25519.PrivateKey, serverPeerID string, nonce []byte) (pub ed25519.PublicKey, sig []byte) {
	pub = key.Public().(ed25519.PublicKey)
	return pub, ed25519.Sign(key, proofMessage(serverPeerID, nonce, IDFromPublicKey(pub)))
}

// verifyProof checks an answer to nonce and returns the proven mailbox id.
func verifyProof(serverPeerID string, nonce, pub, sig []byte) (ID, bool) {
	if len(pub) != PublicKeySize || len(sig) != SignatureSize || len(nonce) != NonceSize {
		return ID{}, false
	}
	id := IDFromPublicKey(pub)
	if !ed25519.Verify(pub, proofMessage(serverPeerID, nonce, id), sig) {
		return ID{}, false
	}
	return id, true
}
