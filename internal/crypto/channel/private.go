package channel

import (
	"encoding/binary"
	"errors"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Private channels encrypt each post body with XChaCha20-Poly1305 under the
// channel's body key (carried in the invite) with a random 24-byte nonce,
// before the owner signs the post. The associated data binds the body to
// its channel and position, so a subscriber cannot move a body to another
// post:
//
//	sealed body = nonce (24) | ciphertext (len + 16)
//	ad          = "samizdat/channel/v1/body" || 0x00 || channel id (32) || sequence (8)
const (
	// BodyKeySize is the size of a private channel's body key.
	BodyKeySize = chacha20poly1305.KeySize
	// SealOverhead is what SealBody adds to a body.
	SealOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

	bodyDomain = "samizdat/channel/v1/body"
)

// ErrBodyKey is returned by OpenBody when the body does not decrypt under
// the key (wrong key, tampered, or moved from another post).
var ErrBodyKey = errors.New("channel: body does not decrypt with the channel key")

// GenerateBodyKey returns a fresh body key read from rand.
func GenerateBodyKey(rand io.Reader) ([]byte, error) {
	k := make([]byte, BodyKeySize)
	if _, err := io.ReadFull(rand, k); err != nil {
		return nil, ErrRandom
	}
	return k, nil
}

// SealBody encrypts the body of post number seq of a channel.
func SealBody(rand io.Reader, key []byte, id [IDSize]byte, seq uint64, body []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, ErrBodyKey
	}
	if len(body) > MaxBodySize-SealOverhead {
		return nil, ErrTooLarge
	}
	out := make([]byte, chacha20poly1305.NonceSizeX, SealOverhead+len(body))
	if _, err := io.ReadFull(rand, out); err != nil {
		return nil, ErrRandom
	}
	return aead.Seal(out, out, body, bodyAD(id, seq)), nil
}

// OpenBody decrypts a body sealed by SealBody.
func OpenBody(key []byte, id [IDSize]byte, seq uint64, sealed []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil || len(sealed) < SealOverhead {
		return nil, ErrBodyKey
	}
	n := chacha20poly1305.NonceSizeX
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], bodyAD(id, seq))
	if err != nil {
		return nil, ErrBodyKey
	}
	return pt, nil
}

func bodyAD(id [IDSize]byte, seq uint64) []byte {
	ad := make([]byte, 0, len(bodyDomain)+1+IDSize+8)
	ad = append(ad, bodyDomain...)
	ad = append(ad, 0)
	ad = append(ad, id[:]...)
	return binary.BigEndian.AppendUint64(ad, seq)
}
