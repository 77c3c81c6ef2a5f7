// Package app wires a samizdat node together — profile, encrypted store,
// libp2p node, messenger and local API — and owns its lifecycle. Only
// cmd/samizdat, internal/cli and tests import it.
//
// A profile is a directory (0700) holding profile.json (how the store key
// is derived), the encrypted database, two lock files (see lockDaemon) and
// api.json (0600: the local API address and token). With
// --no-passphrase the random store key lives in a 0600 key file beside the
// database, as DESIGN §8 allows for users who set no passphrase.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// Files in a profile directory.
const (
	ProfileFile = "profile.json"
	DBFile      = "samizdat.db"
	KeyFile     = "key"
	LockFile    = "lock"
	APIFile     = "api.json"
)

// EnvProfile and EnvPassphrase name the environment variables that set the
// profile directory and the passphrase.
const (
	EnvProfile    = "SAMIZDAT_PROFILE"
	EnvPassphrase = "SAMIZDAT_PASSPHRASE"
)

// Store blobs owned by this package.
const (
	blobP2PKey = "p2p.key"
	blobListen = "p2p.listen" // bound listen addrs of the last run
	// blobMailboxHosts remembers `up --mailbox-host`.
	blobMailboxHosts = "mailbox.hosts"
)

// Errors about profiles.
var (
	// ErrNoProfile is returned when the profile directory holds no profile.
	ErrNoProfile = errors.New("no samizdat profile here (run samizdat init)")
	// ErrProfileExists is returned by Init for a directory that has one.
	ErrProfileExists = errors.New("a samizdat profile already exists here")
	// ErrWrongPassphrase is returned when the passphrase does not open the store.
	ErrWrongPassphrase = errors.New("wrong passphrase for this profile (nothing was changed)")
	// ErrNeedPassphrase is returned when a passphrase-protected profile is
	// opened without one.
	ErrNeedPassphrase = errors.New("this profile is protected by a passphrase: give --passphrase-file or set " + EnvPassphrase)
	// ErrLocked is returned when another process runs on the profile.
	ErrLocked = errors.New("the profile is in use by another samizdat process")
)

// DefaultProfileDir returns $SAMIZDAT_PROFILE, else $XDG_DATA_HOME/samizdat,
// else ~/.local/share/samizdat.
func DefaultProfileDir() string {
	if d := os.Getenv(EnvProfile); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "samizdat")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "samizdat-profile"
	}
	return filepath.Join(home, ".local", "share", "samizdat")
}

// KeySource says where the store key comes from.
type KeySource struct {
	PassphraseFile string // a file whose first line is the passphrase
	Passphrase     string // else this (e.g. from $SAMIZDAT_PASSPHRASE)
	NoPassphrase   bool   // Init only: a random key in a 0600 file
}

func (k KeySource) passphrase() (string, bool, error) {
	if k.PassphraseFile != "" {
		b, err := os.ReadFile(k.PassphraseFile)
		if err != nil {
			return "", false, fmt.Errorf("read passphrase file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimRight(line, "\r")
		if line == "" {
			return "", false, errors.New("the passphrase file is empty")
		}
		return line, true, nil
	}
	if k.Passphrase != "" {
		return k.Passphrase, true, nil
	}
	return "", false, nil
}

type profileMeta struct {
	Version int    `json:"version"`
	KDF     string `json:"kdf"` // "argon2id" or "keyfile"
	Salt    string `json:"salt,omitempty"`
}

// Init creates a profile: directory, store key, identity, prekeys and the
// device's transport key. It returns the new account id.
func Init(ctx context.Context, dir, name string, ks KeySource) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errors.New("a name is required (--name)")
	}
	if len(name) > 100 || strings.ContainsAny(name, "\n\r\t") {
		return "", errors.New("the name must be one line of at most 100 bytes")
	}
	st, meta, unlock, err := createStore(dir, ks)
	if err != nil {
		return "", err
	}
	defer unlock()
	defer st.Close()
	if err := messenger.InitProfile(ctx, st, name, nil); err != nil {
		return "", err
	}
	priv, _, err := p2p.GenerateKey()
	if err != nil {
		return "", err
	}
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobP2PKey, priv) }); err != nil {
		return "", err
	}
	// profile.json last: its presence means the profile is complete.
	if err := writeProfileMeta(dir, meta); err != nil {
		return "", err
	}
	m, err := messenger.New(ctx, messenger.Config{Store: st})
	if err != nil {
		return "", err
	}
	defer m.Close()
	return m.AccountID(), nil
}

// createStore makes a profile's directory, store key and empty store,
// holding the profile lock (released by unlock). profile.json is not
// written: the caller writes it last (writeProfileMeta), once the profile
// is complete.
func createStore(dir string, ks KeySource) (_ *store.Store, _ profileMeta, unlock func(), _ error) {
	pass, havePass, err := ks.passphrase()
	if err != nil {
		return nil, profileMeta{}, nil, err
	}
	if havePass == ks.NoPassphrase {
		return nil, profileMeta{}, nil, errors.New("choose either a passphrase (--passphrase-file or " + EnvPassphrase + ") or --no-passphrase")
	}
	if _, err := os.Stat(filepath.Join(dir, ProfileFile)); err == nil {
		return nil, profileMeta{}, nil, fmt.Errorf("%w: %s", ErrProfileExists, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, profileMeta{}, nil, err
	}
	if err := secureDir(dir); err != nil {
		return nil, profileMeta{}, nil, err
	}
	unlock, err = lockProfile(dir)
	if err != nil {
		return nil, profileMeta{}, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	// profile.json is written last: without it, what is here is the rest of
	// an init that failed half-way (no identity anyone knows yet), and it
	// is cleared so that init can be run again.
	for _, f := range []string{DBFile, DBFile + "-wal", DBFile + "-shm", KeyFile, ProfileFile + ".tmp", KeyFile + ".tmp"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, profileMeta{}, nil, err
		}
	}
	meta := profileMeta{Version: 1}
	var key []byte
	if havePass {
		salt, err := store.NewSalt()
		if err != nil {
			return nil, profileMeta{}, nil, err
		}
		meta.KDF, meta.Salt = "argon2id", hex.EncodeToString(salt)
		key = store.DeriveKey([]byte(pass), salt)
	} else {
		key = make([]byte, store.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, profileMeta{}, nil, err
		}
		meta.KDF = "keyfile"
		if err := writeFileAtomic(filepath.Join(dir, KeyFile), []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, profileMeta{}, nil, err
		}
	}
	st, err := store.Open(filepath.Join(dir, DBFile), key)
	if err != nil {
		return nil, profileMeta{}, nil, err
	}
	ok = true
	return st, meta, unlock, nil
}

// writeProfileMeta writes profile.json: its presence means the profile is
// complete.
func writeProfileMeta(dir string, meta profileMeta) error {
	mb, _ := json.MarshalIndent(meta, "", "  ")
	return writeFileAtomic(filepath.Join(dir, ProfileFile), append(mb, '\n'), 0o600)
}

// openStore opens a profile's store with the key from ks.
func openStore(dir string, ks KeySource) (*store.Store, error) {
	if err := secureDir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	mb, err := os.ReadFile(filepath.Join(dir, ProfileFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoProfile, dir)
	} else if err != nil {
		return nil, err
	}
	var meta profileMeta
	if err := json.Unmarshal(mb, &meta); err != nil || meta.Version != 1 {
		return nil, fmt.Errorf("%s is damaged or from a newer samizdat", filepath.Join(dir, ProfileFile))
	}
	var key []byte
	switch meta.KDF {
	case "keyfile":
		b, err := os.ReadFile(filepath.Join(dir, KeyFile))
		if err != nil {
			return nil, fmt.Errorf("read the profile key file: %w", err)
		}
		key, err = hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != store.KeySize {
			return nil, fmt.Errorf("the profile key file %s is damaged", filepath.Join(dir, KeyFile))
		}
	case "argon2id":
		pass, ok, err := ks.passphrase()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNeedPassphrase
		}
		salt, err := hex.DecodeString(meta.Salt)
		if err != nil || len(salt) == 0 {
			return nil, fmt.Errorf("%s is damaged (salt)", filepath.Join(dir, ProfileFile))
		}
		key = store.DeriveKey([]byte(pass), salt)
	default:
		return nil, fmt.Errorf("%s names an unknown key scheme %q", filepath.Join(dir, ProfileFile), meta.KDF)
	}
	st, err := store.Open(filepath.Join(dir, DBFile), key)
	if errors.Is(err, store.ErrWrongKey) {
		return nil, ErrWrongPassphrase
	}
	return st, err
}

// The profile has two locks (flock), so that a daemon can tell another
// daemon from a short command:
//
//   - LockFile is held by whoever has the store open: a daemon for its
//     whole run, a CLI command (init, or one run offline) only for its own
//     duration. Two processes never write one store.
//   - DaemonLockFile is held, on top, only by a daemon (`up`, `relay`) for
//     its whole run. A second daemon fails on it at once.
//
// So a daemon that finds LockFile taken while it holds DaemonLockFile
// knows the holder is a short command, and waits for it (lockWait)
// instead of exiting: `samizdat up & samizdat status` must never kill the
// daemon. A command that finds LockFile taken waits too, and uses the
// daemon's API as soon as it answers (internal/cli).

// DaemonLockFile is held by the daemon running on a profile (see above).
const DaemonLockFile = "daemon.lock"

// lockWait bounds how long a starting daemon waits for a short command to
// release the profile.
var lockWait = 15 * time.Second

// lockPoll is how often a waiting lock is tried again.
const lockPoll = 10 * time.Millisecond

// onLockBusy, if set (tests), is called when a starting daemon finds the
// store lock held by a short command and begins to wait.
var onLockBusy func()

// lockProfile takes the store lock for a short holder (a CLI command, or
// init), failing at once with ErrLocked if anyone holds it.
func lockProfile(dir string) (func(), error) {
	return flockFile(filepath.Join(dir, LockFile), "")
}

// lockDaemon takes the daemon lock (failing at once with ErrLocked if a
// daemon runs on the profile) and then the store lock, waiting up to
// lockWait for a short command that holds it.
func lockDaemon(ctx context.Context, dir string) (func(), error) {
	unlockD, err := flockFile(filepath.Join(dir, DaemonLockFile), "a samizdat node already runs on it")
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockWait)
	busy := false
	for {
		unlockS, err := flockFile(filepath.Join(dir, LockFile), "")
		if err == nil {
			return func() { unlockS(); unlockD() }, nil
		}
		if !errors.Is(err, ErrLocked) {
			unlockD()
			return nil, err
		}
		if !busy && onLockBusy != nil {
			onLockBusy()
		}
		busy = true
		if time.Now().After(deadline) {
			unlockD()
			return nil, fmt.Errorf("%w: a command still holds it after %v", err, lockWait)
		}
		select {
		case <-ctx.Done():
			unlockD()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// flockFile takes an exclusive flock on path without waiting and writes
// the holder's pid into it, for the error another process gets (which
// says why, if why is set).
func flockFile(path, why string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		err := ErrLocked
		if why != "" {
			err = fmt.Errorf("%w: %s", err, why)
		}
		if pid := strings.TrimSpace(string(b)); pid != "" {
			return nil, fmt.Errorf("%w (pid %s)", err, pid)
		}
		return nil, err
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
