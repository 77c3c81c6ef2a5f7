//go:build !linux

package media

import (
	"errors"
	"os"
)

// openDirect: writes that bypass the page cache are used on Linux only.
func openDirect(string) (*os.File, error) {
	return nil, errors.New("media: no direct I/O here")
}
