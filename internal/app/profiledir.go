package app

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrProfilePerm is returned when a profile directory is open to other
// users and is not ours to fix.
var ErrProfilePerm = errors.New("the profile directory is not private")

// secureDir makes a profile directory private (0700): its files (the
// store, the key file, the API token in api.json) are only as private as
// the directory. A directory of ours with looser modes is fixed; one that
// belongs to another user is refused, since its owner can always open it
// up again.
func secureDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrProfilePerm, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%w: %s belongs to another user (uid %d); use a profile directory of your own", ErrProfilePerm, dir, st.Uid)
	}
	if fi.Mode().Perm() == 0o700 {
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %s has mode %o and cannot be made 0700: %w", ErrProfilePerm, dir, fi.Mode().Perm(), err)
	}
	return nil
}
