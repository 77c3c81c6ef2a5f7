package senderkey

import (
	"crypto/ed25519"
	"encoding/binary"
)

// VerifySignature checks the structure and the signature of a message under
// a sender's signing key without decrypting it or touching any Receiver
// state, so that a relay holding the sender's key (a group member) can
// refuse forged messages before forwarding them. It returns the message's
// epoch and iteration.
func VerifySignature(signingKey ed25519.PublicKey, msg []byte) (epoch, iteration uint32, err error) {
	switch {
	case len(msg) < 1:
		return 0, 0, ErrTruncated
	case msg[0] != Version:
		return 0, 0, ErrVersion
	case len(msg) < Overhead:
		return 0, 0, ErrTruncated
	case len(msg) > MaxMessageSize:
		return 0, 0, ErrTooLarge
	case len(signingKey) != ed25519.PublicKeySize:
		return 0, 0, ErrMalformed
	}
	body, sig := msg[:len(msg)-SignatureSize], msg[len(msg)-SignatureSize:]
	if !ed25519.Verify(signingKey, signedMessage(body), sig) {
		return 0, 0, ErrBadSignature
	}
	return binary.BigEndian.Uint32(msg[1:]), binary.BigEndian.Uint32(msg[5:]), nil
}
