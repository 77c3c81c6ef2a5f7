//go:build !linux

package media

import (
	"errors"
	"io"
	"os"
)

// openDirect: writes that bypass the page cache are used on Linux only.
func openDirect(string) (*os.File, error) {
	return nil, errors.New("media: no direct I/O here")
}

// readInto reads the file at path into buf, up to len(buf) bytes.
func readInto(path string, buf []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}
