package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/vfs"
	"lukechampine.com/adiantum"
)

// The aligned-WAL VFS.
//
// The adiantum VFS encrypts files in 4 KiB blocks. SQLite's WAL is a
// 32-byte header followed by frames of a 24-byte header and a 4 KiB page, so
// every frame straddles cipher blocks: writing one costs three partial-block
// writes, each a read, a decryption, an encryption, a write and a pair of
// lock calls. Measured (BenchmarkCommitVFS), that made a small commit cost
// more than twice what the same commit costs unencrypted.
//
// alignedVFS sits above adiantum and gives SQLite the WAL it expects while
// the file below holds it re-laid out so that every write SQLite makes is
// whole cipher blocks:
//
//	block 0         the 32-byte WAL header, walMagic, zeros
//	block 1+2i      frame i's 24-byte header, zeros
//	block 2+2i      frame i's page
//
// The WAL takes twice the disk, and nothing else changes: frame numbers,
// checksums, salts and the wal-index are SQLite's own, so a write torn by a
// crash is found by SQLite's recovery exactly as before (a header block
// without its page is a frame cut short). Every other file (the database,
// journals) is adiantum's, untouched: the on-disk format of the database
// itself is the same.
//
// A WAL written in the old layout (by an older samizdat, left by a crash)
// does not carry walMagic; Open checkpoints it through plain adiantum
// before this VFS opens the file (see recoverLegacyWAL), and this VFS
// refuses such a file rather than misread it.
const alignedVFSName = "samizdat-adiantum"

const (
	walBlock     = 4096 // adiantum's block; also the page size the layout assumes
	walHeader    = 32   // SQLite's WAL header
	walFrameHdr  = 24   // SQLite's frame header
	walFrame     = walFrameHdr + walBlock
	walPhysFrame = 2 * walBlock
)

// walMagic follows the WAL header in block 0: it tells this layout from
// SQLite's own (where frame 0's header, starting with a page number that
// is never zero, follows the WAL header).
var walMagic = []byte("\x00\x00\x00\x00samizdat aligned WAL v1\x00")

// errWALLayout is returned when a WAL is not in the aligned layout or its
// page size is not walBlock.
var errWALLayout = errors.New("store: WAL is not in samizdat's aligned layout")

func init() {
	vfs.Register(alignedVFSName, alignedVFS{base: vfs.Find(encryptedBaseVFS)})
}

// alignedVFS passes every file through to base except WALs.
type alignedVFS struct{ base vfs.VFS }

func (a alignedVFS) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, flags, err := a.base.Open(name, flags)
	return a.wrap(f, flags, err)
}

func (a alignedVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	if b, ok := a.base.(vfs.VFSFilename); ok {
		f, flags, err := b.OpenFilename(name, flags)
		return a.wrap(f, flags, err)
	}
	return a.Open(name.String(), flags)
}

func (a alignedVFS) wrap(f vfs.File, flags vfs.OpenFlag, err error) (vfs.File, vfs.OpenFlag, error) {
	if err != nil || flags&vfs.OPEN_WAL == 0 {
		return f, flags, err
	}
	w := &walFile{File: f}
	if err := w.check(); err != nil {
		f.Close()
		return nil, flags, err
	}
	return w, flags, nil
}

func (a alignedVFS) Delete(name string, syncDir bool) error { return a.base.Delete(name, syncDir) }
func (a alignedVFS) Access(name string, flags vfs.AccessFlag) (bool, error) {
	return a.base.Access(name, flags)
}
func (a alignedVFS) FullPathname(name string) (string, error) { return a.base.FullPathname(name) }

// walFile maps SQLite's WAL offsets onto the aligned layout.
type walFile struct {
	vfs.File                // adiantum's file
	buf      [walBlock]byte // one zero-padded block being written
}

// check verifies that an existing WAL is in the aligned layout.
func (w *walFile) check() error {
	size, err := w.File.Size()
	if err != nil || size == 0 {
		return err
	}
	var b [walBlock]byte
	if _, err := w.File.ReadAt(b[:], 0); err != nil {
		return err
	}
	if !bytes.Equal(b[walHeader:walHeader+len(walMagic)], walMagic) {
		return errWALLayout
	}
	return nil
}

// The parts of a WAL, each kept in blocks of its own.
const (
	partWALHeader = iota
	partFrameHeader
	partPage
)

// segment locates logical offset off: the physical offset it maps to, how
// many bytes from there lie in the same part, which part that is and
// whether off is the part's first byte.
func segment(off int64) (phys, n int64, part int, first bool) {
	if off < walHeader {
		return off, walHeader - off, partWALHeader, off == 0
	}
	i, r := (off-walHeader)/walFrame, (off-walHeader)%walFrame
	base := walBlock + i*walPhysFrame
	if r < walFrameHdr {
		return base + r, walFrameHdr - r, partFrameHeader, r == 0
	}
	r -= walFrameHdr
	return base + walBlock + r, walBlock - r, partPage, r == 0
}

func (w *walFile) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		phys, k, _, _ := segment(off + int64(n))
		k = min(k, int64(len(p)-n))
		m, err := w.File.ReadAt(p[n:n+int(k)], phys)
		n += m
		if m < int(k) {
			if err == nil {
				err = io.EOF
			}
			return n, err
		}
	}
	return n, nil
}

func (w *walFile) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		phys, k, part, first := segment(off + int64(n))
		whole := first && int64(len(p)-n) >= k
		k = min(k, int64(len(p)-n))
		seg := p[n : n+int(k)]
		switch {
		case whole && part == partWALHeader:
			// Block 0 is written whole: the header, the magic, zeros.
			if binary.BigEndian.Uint32(seg[8:12]) != walBlock {
				return n, errWALLayout
			}
			clear(w.buf[:])
			copy(w.buf[:], seg)
			copy(w.buf[walHeader:], walMagic)
			if _, err := w.File.WriteAt(w.buf[:], 0); err != nil {
				return n, err
			}
		case whole && part == partFrameHeader:
			// A frame header's block, zero-padded.
			clear(w.buf[:])
			copy(w.buf[:], seg)
			if _, err := w.File.WriteAt(w.buf[:], phys); err != nil {
				return n, err
			}
		default:
			// A whole page is a whole block. Anything else (SQLite
			// writes no such thing) is a partial block: correct, slower.
			if _, err := w.File.WriteAt(seg, phys); err != nil {
				return n, err
			}
		}
		n += int(k)
	}
	return n, nil
}

// logicalSize maps a physical size (whole blocks) to the WAL size SQLite
// sees: a header block without its page reads as a frame cut short.
func logicalSize(phys int64) int64 {
	if phys <= 0 {
		return 0
	}
	if phys <= walBlock {
		return walHeader
	}
	i, r := (phys-walBlock)/walPhysFrame, (phys-walBlock)%walPhysFrame
	size := walHeader + i*walFrame
	if r > walBlock {
		return size + walFrameHdr + (r - walBlock)
	}
	return size + min(r, walFrameHdr)
}

// physicalSize maps a WAL size to the physical size holding it.
func physicalSize(size int64) int64 {
	if size <= 0 {
		return 0
	}
	if size <= walHeader {
		return walBlock
	}
	i, r := (size-walHeader)/walFrame, (size-walHeader)%walFrame
	phys := walBlock + i*walPhysFrame
	switch {
	case r == 0:
		return phys
	case r <= walFrameHdr:
		return phys + walBlock
	}
	return phys + walPhysFrame
}

func (w *walFile) Size() (int64, error) {
	s, err := w.File.Size()
	return logicalSize(s), err
}

func (w *walFile) Truncate(size int64) error { return w.File.Truncate(physicalSize(size)) }

// SizeHint and ChunkSize pass SQLite's hints on in physical terms.
func (w *walFile) SizeHint(size int64) error {
	if f, ok := w.File.(vfs.FileSizeHint); ok {
		return f.SizeHint(physicalSize(size))
	}
	return sqlite3.NOTFOUND
}

func (w *walFile) ChunkSize(size int) {
	if f, ok := w.File.(vfs.FileChunkSize); ok {
		f.ChunkSize(2 * size)
	}
}

var (
	_ vfs.VFSFilename  = alignedVFS{}
	_ vfs.FileSizeHint = (*walFile)(nil)
)

// recoverLegacyWAL checkpoints a WAL left in SQLite's own layout (by a
// samizdat from before the aligned layout, which then crashed or was
// killed) into the database file through plain adiantum, so that no
// committed write is lost when the aligned VFS opens the database. path's
// key has been checked by precheck.
func recoverLegacyWAL(path string, key []byte) error {
	f, err := os.Open(path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	block := make([]byte, walBlock)
	_, err = io.ReadFull(f, block)
	f.Close()
	if errors.Is(err, io.EOF) {
		return nil // empty: nothing to recover
	}
	if err == nil && checkWALMagic(key, block) {
		return nil // already aligned
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path}
	u.RawQuery = url.Values{"vfs": {encryptedBaseVFS}}.Encode()
	db, err := driver.Open(u.String(), func(c *sqlite3.Conn) error {
		return c.Exec(`PRAGMA hexkey='` + hex.EncodeToString(key) + `'`)
	})
	if err != nil {
		return fmt.Errorf("store: legacy WAL: %w", err)
	}
	db.SetMaxOpenConns(1)
	_, err = db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: legacy WAL: %w", openError(err))
	}
	return nil
}

// checkWALMagic tells whether block, the first block of an encrypted WAL,
// is in the aligned layout.
func checkWALMagic(key, block []byte) bool {
	var tweak [8]byte // block 0
	plain := adiantum.New(key).Decrypt(append([]byte(nil), block...), tweak[:])
	return bytes.Equal(plain[walHeader:walHeader+len(walMagic)], walMagic)
}
