package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/ext/fts5"
	_ "github.com/ncruces/go-sqlite3/vfs/adiantum" // registers the "adiantum" VFS
	_ "github.com/ncruces/go-sqlite3/vfs/xts"      // registers the "xts" VFS (measured against adiantum)
	"lukechampine.com/adiantum"
)

// KeySize is the size in bytes of a database key.
const KeySize = 32

const (
	// applicationID marks the file as samizdat's ("SZDT").
	applicationID = 0x535A4454
	// pageSize is SQLite's default page size and adiantum's block size: an
	// encrypted database is always a whole number of them.
	pageSize = 4096
	// busyTimeout bounds the wait for another process holding the file
	// (within one Store, writes are serialized and never wait on each other).
	busyTimeout = 10 * time.Second
	// readers is the number of read connections (each is a wasm instance).
	readers = 4
	// autoCheckpointPages is how large the WAL may grow before a commit
	// checkpoints it itself. SQLite's default of 1,000 pages stalls a
	// commit by ~20 ms every hundred messages or so; with Checkpoint run
	// when the node is idle, bursts of up to a few hundred messages see no
	// stall, and a sustained flood one of ~4× that every ~4× as long.
	autoCheckpointPages = 4000
	// encryptedVFS is the VFS every production Store uses: adiantum,
	// with the WAL laid out in whole cipher blocks (walvfs.go).
	encryptedVFS = alignedVFSName
	// encryptedBaseVFS is adiantum itself: the same encryption of the
	// database file, SQLite's own WAL layout. Only recoverLegacyWAL uses
	// it directly.
	encryptedBaseVFS = "adiantum"
)

// Store is an open samizdat database. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex // held shared by every transaction, exclusively by Close
	closed bool
	w      *sql.DB   // one connection: the only writer
	r      *sql.DB   // query_only connections for View
	ws, rs stmtCache // prepared statements of w and r
	ck     *sql.DB   // checkpoints only; nil: none
	group  group     // UpdateShared's queue
}

// Open opens (creating it if needed) the encrypted database at path with a
// KeySize-byte key, checks that it is samizdat's and applies pending
// migrations. It returns ErrWrongKey if the key does not decrypt the file,
// ErrNotDatabase if the file is not an encrypted samizdat database and
// ErrSchemaTooNew if a newer samizdat wrote it; in those cases the file is
// left untouched.
func Open(path string, key []byte) (*Store, error) {
	return openSchema(path, key, encryptedVFS, profileSchema)
}

// open is openSchema for the profile database (tests use it with another
// VFS).
func open(path string, key []byte, vfsName string) (*Store, error) {
	return openSchema(path, key, vfsName, profileSchema)
}

// openSchema opens a database of the given kind with a choice of VFS, so a
// test can show that its plaintext check would catch an unencrypted file.
// Only the encrypted VFS is for production.
func openSchema(path string, key []byte, vfsName string, sc schema) (_ *Store, err error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d", ErrInvalid, len(key), KeySize)
	}
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("%w: empty database path", ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := precheck(abs, vfsName, key); err != nil {
		return nil, err
	}
	if vfsName == encryptedVFS {
		if err := recoverLegacyWAL(abs, key); err != nil {
			return nil, err
		}
	}

	u := url.URL{Scheme: "file", OmitHost: true, Path: abs}
	q := url.Values{"vfs": {vfsName}, "_txlock": {"immediate"}}
	u.RawQuery = q.Encode()
	dsn := u.String()
	// The key is applied with a PRAGMA from the connection hook rather than
	// in the DSN, so it never sits in a string that error paths may print.
	hexKey := hex.EncodeToString(key)

	w, err := driver.Open(dsn, func(c *sqlite3.Conn) error { return initConn(c, hexKey, vfsName, true) })
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	defer func() {
		if err != nil {
			w.Close()
		}
	}()

	ctx := context.Background()
	if err := w.PingContext(ctx); err != nil {
		return nil, openError(err)
	}
	if err := migrateSchema(ctx, w, sc); err != nil {
		return nil, err
	}

	r, err := driver.Open(dsn, func(c *sqlite3.Conn) error { return initConn(c, hexKey, vfsName, false) })
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		return nil, openError(err)
	}
	// A connection of its own for checkpoints (see Checkpoint), so that
	// copying the WAL into the main file never holds up the writer.
	ck, err := driver.Open(dsn, func(c *sqlite3.Conn) error { return initConn(c, hexKey, vfsName, true) })
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	ck.SetMaxOpenConns(1)
	return &Store{w: w, r: r, ck: ck}, nil
}

// Checkpoint copies what the WAL holds into the database file without
// blocking writers (a PASSIVE checkpoint on a connection of its own). The
// writer's automatic checkpoints are rare (autoCheckpointPages), so that
// they do not stall a burst of messages; call Checkpoint when idle.
func (s *Store) Checkpoint(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.ck == nil {
		return nil
	}
	if _, err := s.ck.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}

// precheck rejects files that are certainly not encrypted samizdat
// databases, and keys that do not decrypt the file, before SQLite touches
// them; it creates a new file 0600.
//
// The key must be checked here, not left to SQLite: given a wrong key and a
// WAL left by a crash, SQLite sees an invalid WAL and deletes it on close,
// losing every write not yet checkpointed.
func precheck(path, vfsName string, key []byte) error {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return f.Close()
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrNotDatabase, path)
	}
	if fi.Size() == 0 {
		return nil
	}
	if fi.Size()%pageSize != 0 {
		return fmt.Errorf("%w: %s has a partial page", ErrNotDatabase, path)
	}
	if vfsName != encryptedVFS && vfsName != encryptedBaseVFS {
		return nil
	}
	page := make([]byte, pageSize)
	if _, err := io.ReadFull(f, page); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if bytes.HasPrefix(page, sqliteMagic) {
		return fmt.Errorf("%w: %s is an unencrypted SQLite database", ErrNotDatabase, path)
	}
	// The adiantum VFS encrypts each 4 KiB block with its file offset
	// (little-endian uint64) as the tweak; page 1 is block 0.
	var tweak [8]byte
	if !bytes.HasPrefix(adiantum.New(key).Decrypt(page, tweak[:]), sqliteMagic) {
		return ErrWrongKey
	}
	return nil
}

var sqliteMagic = []byte("SQLite format 3\x00")

// initConn prepares every new connection. The key must be set before
// anything reads the file; the first read then tells a wrong key apart
// before any statement could write.
func initConn(c *sqlite3.Conn, hexKey, vfsName string, writer bool) error {
	if vfsName != "os" {
		if err := c.Exec(`PRAGMA hexkey='` + hexKey + `'`); err != nil {
			return err
		}
	}
	if err := c.Exec(`SELECT count(*) FROM sqlite_schema`); err != nil {
		return err
	}
	if err := c.BusyTimeout(busyTimeout); err != nil {
		return err
	}
	pragmas := `PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY;`
	if writer {
		pragmas += `PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=` + strconv.Itoa(autoCheckpointPages) + `;`
	} else {
		pragmas += `PRAGMA query_only=ON;`
	}
	if err := c.Exec(pragmas); err != nil {
		return err
	}
	return fts5.Register(c)
}

// openError maps SQLite's answer to a bad file onto the package sentinels.
func openError(err error) error {
	switch {
	case errors.Is(err, sqlite3.NOTADB):
		return ErrWrongKey
	case errors.Is(err, sqlite3.IOERR_BADKEY):
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return fmt.Errorf("store: open: %w", err)
}

// Close waits for running transactions, then closes the database
// (checkpointing and removing the WAL). Later calls return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	// Readers first, so the writer is the last connection and checkpoints.
	var ckErr error
	if s.ck != nil {
		ckErr = s.ck.Close()
	}
	return errors.Join(s.rs.close(), s.ws.close(), ckErr, s.r.Close(), s.w.Close())
}

// Update runs fn in one write transaction. Updates are serialized; they do
// not block View. If fn returns an error (or panics) the transaction is
// rolled back and the error is returned unchanged. fn must not call Update.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	return s.run(ctx, s.w, nil, fn)
}

// View runs fn in a read-only transaction: a consistent snapshot that may
// run concurrently with other Views and with an Update.
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	return s.run(ctx, s.r, &sql.TxOptions{ReadOnly: true}, fn)
}

func (s *Store) run(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(tx *Tx) error) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	cache := &s.rs
	if db == s.w {
		cache = &s.ws
	}
	if cache.hasPending() {
		cache.prepare(ctx, db)
	}
	stx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	done := false
	defer func() {
		if !done {
			stx.Rollback() // fn panicked; the panic goes on
		}
	}()
	tx := &Tx{ctx: ctx, tx: stx, db: db, stmts: cache}
	if err := fn(tx); err != nil {
		done = true
		stx.Rollback()
		return err
	}
	done = true
	if opts != nil && opts.ReadOnly {
		stx.Rollback()
		return nil
	}
	if err := stx.Commit(); err != nil {
		if errors.Is(err, sqlite3.FULL) || errors.Is(err, sqlite3.IOERR) {
			return fmt.Errorf("%w (%v)", ErrDiskFull, err)
		}
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// Tx is a transaction handed to an Update or View callback. It must not be
// used after the callback returns, nor from several goroutines at once.
type Tx struct {
	ctx   context.Context
	tx    *sql.Tx
	db    *sql.DB
	stmts *stmtCache
}

// stmt returns query prepared once per Store (SQLite's parser is a good
// part of the cost of a small statement) and bound to this transaction.
func (tx *Tx) stmt(query string) (*sql.Stmt, error) {
	st, err := tx.stmts.get(tx.ctx, tx.db, query)
	if err != nil {
		return nil, err
	}
	return tx.tx.StmtContext(tx.ctx, st), nil
}

func (tx *Tx) exec(query string, args ...any) (sql.Result, error) {
	if st, err := tx.stmt(query); err == nil {
		return st.ExecContext(tx.ctx, args...)
	}
	return tx.tx.ExecContext(tx.ctx, query, args...)
}

func (tx *Tx) queryRow(query string, args ...any) *sql.Row {
	if st, err := tx.stmt(query); err == nil {
		return st.QueryRowContext(tx.ctx, args...)
	}
	return tx.tx.QueryRowContext(tx.ctx, query, args...)
}

func (tx *Tx) query(query string, args ...any) (*sql.Rows, error) {
	if st, err := tx.stmt(query); err == nil {
		return st.QueryContext(tx.ctx, args...)
	}
	return tx.tx.QueryContext(tx.ctx, query, args...)
}

// stmtCache holds the prepared statements of one *sql.DB by query text.
// The set of queries is fixed by the code, so it stays small. A statement
// cannot be prepared on the writer while a transaction holds its only
// connection, so a query seen for the first time runs unprepared and is
// prepared before the next transaction begins.
type stmtCache struct {
	mu      sync.Mutex
	m       map[string]*sql.Stmt
	pending map[string]bool
}

var errNotPrepared = errors.New("statement not prepared yet")

func (c *stmtCache) get(_ context.Context, _ *sql.DB, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	if c.pending == nil {
		c.pending = map[string]bool{}
	}
	c.pending[query] = true
	return nil, errNotPrepared
}

// prepare prepares the queries seen since the last call. It is called
// with no transaction open by this goroutine, so it may wait for a
// connection without deadlocking.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB) {
	c.mu.Lock()
	var qs []string
	for q := range c.pending {
		qs = append(qs, q)
	}
	c.pending = nil
	c.mu.Unlock()
	// Not under c.mu: PrepareContext may wait for a connection that a
	// transaction holds, and that transaction needs c.mu to run.
	for _, q := range qs {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			continue // it will run unprepared, and report its error then
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]*sql.Stmt{}
		}
		if _, dup := c.m[q]; dup {
			st.Close()
		} else {
			c.m[q] = st
		}
		c.mu.Unlock()
	}
}

func (c *stmtCache) hasPending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}
