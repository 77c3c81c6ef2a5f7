package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"lukechampine.com/adiantum"
)

// DecryptFile returns the plaintext of a file the encrypted VFS wrote with
// key (a database, or its WAL while one is left): every byte someone
// holding the key reads, live rows and freed pages alike. Tests of what a
// relay or carrier operator can see scan this, not the encrypted file (in
// which nothing is ever found, so such a scan proves nothing). It fails
// with ErrWrongKey when a database's first page does not decrypt to an
// SQLite header.
func DecryptFile(path string, key []byte) ([]byte, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: the key must be %d bytes", KeySize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b)%pageSize != 0 {
		return nil, fmt.Errorf("%w: %s has a partial block", ErrNotDatabase, path)
	}
	c := adiantum.New(key)
	var tweak [8]byte
	// The VFS encrypts each 4 KiB block with its byte offset
	// (little-endian) as the tweak, whatever the file.
	for off := 0; off < len(b); off += pageSize {
		binary.LittleEndian.PutUint64(tweak[:], uint64(off))
		copy(b[off:off+pageSize], c.Decrypt(b[off:off+pageSize], tweak[:]))
	}
	if len(b) > 0 && !strings.HasSuffix(path, "-wal") && !bytes.HasPrefix(b, sqliteMagic) {
		return nil, ErrWrongKey
	}
	return b, nil
}
