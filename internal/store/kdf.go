package store

import (
	"crypto/rand"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters of DeriveKey. Changing any of them changes every
// derived key, so they are part of the on-disk format: a change needs a
// migration path (store the parameters beside the salt first).
const (
	KDFTime    = 3         // passes over memory
	KDFMemory  = 64 * 1024 // KiB (64 MiB)
	KDFThreads = 2         // lanes
	SaltSize   = 16        // bytes, see NewSalt
)

// DeriveKey turns a passphrase into a KeySize-byte database key with
// argon2id (KDFTime, KDFMemory, KDFThreads). The salt should come from
// NewSalt and be kept beside the profile; it is not secret.
func DeriveKey(passphrase, salt []byte) []byte {
	return argon2.IDKey(passphrase, salt, KDFTime, KDFMemory, KDFThreads, KeySize)
}

// NewSalt returns SaltSize random bytes for DeriveKey.
func NewSalt() ([]byte, error) {
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	return salt, nil
}
