package media

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// Sizes of the attachment format.
const (
	ChunkSize       = 256 << 10                 // plaintext bytes per chunk
	KeySize         = chacha20poly1305.KeySize  // per-file key
	HashSize        = sha256.Size               // chunk address
	TagSize         = chacha20poly1305.Overhead // added to each chunk
	MaxSealedChunk  = ChunkSize + TagSize       // largest chunk on the wire
	MaxManifestSize = 48 << 10                  // largest encoded manifest
	MaxThumbnail    = 32 << 10                  // largest inline preview
	MaxNameLen      = 255
	MaxMIMELen      = 127
	MaxWaveform     = 256 // levels in a voice note's waveform summary
	// MaxDuration bounds an audio file's stated length (24 hours).
	MaxDuration = 24 * 3600 * 1000
	// hashesPerIndexChunk is how many chunk hashes one index chunk holds.
	hashesPerIndexChunk = ChunkSize / HashSize
	// MaxIndexChunks bounds the index, hence the file: 1024 index chunks
	// name 8 Mi chunks, 2 TiB.
	MaxIndexChunks = 1024
)

// ErrBadManifest is returned by ParseManifest for bytes that are not a
// well-formed manifest.
var ErrBadManifest = errors.New("media: malformed attachment manifest")

// Hash is the SHA-256 of a sealed chunk: its address.
type Hash [HashSize]byte

func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// Manifest describes one file: everything a receiver needs to fetch, check
// and decrypt it.
type Manifest struct {
	Key         [KeySize]byte
	Size        int64
	Name, MIME  string
	Index       []Hash // hashes of the sealed index chunks
	PlainSHA256 [HashSize]byte
	Thumbnail   []byte // small JPEG, images only
	Width       int
	Height      int
	// DurationMS is the length of a voice note (or other audio) in
	// milliseconds, 0 if unknown; Waveform its peak levels (0-255) over
	// equal slices, for display. Both are what the sender says: display
	// only, never trusted for anything else.
	DurationMS int
	Waveform   []byte
}

// Chunks is the number of data chunks of the file.
func (m *Manifest) Chunks() int {
	return int((m.Size + ChunkSize - 1) / ChunkSize)
}

// indexChunks is how many index chunks a file of n chunks has (at least one).
func indexChunks(n int) int {
	return max(1, (n+hashesPerIndexChunk-1)/hashesPerIndexChunk)
}

// Marshal encodes the manifest for a message.
func (m *Manifest) Marshal() []byte {
	a := &wirepb.Attachment{
		Version: wire.Version, Key: m.Key[:], Size: uint64(m.Size), Name: m.Name, Mime: m.MIME,
		ChunkSize: ChunkSize, PlainSha256: m.PlainSHA256[:], Thumbnail: m.Thumbnail,
		Width: uint32(m.Width), Height: uint32(m.Height), DurationMs: uint32(m.DurationMS), Waveform: m.Waveform,
	}
	for _, h := range m.Index {
		a.Index = append(a.Index, h[:])
	}
	return wire.Marshal(a)
}

// ParseManifest decodes and checks a manifest. It rejects anything
// inconsistent: a wrong version or chunk size, an index that does not
// match the size, an unsafe file name.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadManifest, len(b))
	}
	var a wirepb.Attachment
	if err := proto.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if a.Version != wire.Version || a.ChunkSize != ChunkSize || len(a.Key) != KeySize || len(a.PlainSha256) != HashSize {
		return nil, ErrBadManifest
	}
	if a.Size > uint64(MaxIndexChunks)*hashesPerIndexChunk*ChunkSize {
		return nil, fmt.Errorf("%w: size %d", ErrBadManifest, a.Size)
	}
	m := &Manifest{Size: int64(a.Size), Name: a.Name, MIME: a.Mime, Thumbnail: a.Thumbnail, Width: int(a.Width), Height: int(a.Height),
		DurationMS: int(a.DurationMs), Waveform: a.Waveform}
	if len(a.Index) != indexChunks(m.Chunks()) {
		return nil, fmt.Errorf("%w: index of %d chunks for %d bytes", ErrBadManifest, len(a.Index), a.Size)
	}
	if !safeName(a.Name) || len(a.Mime) > MaxMIMELen || !utf8.ValidString(a.Mime) || len(a.Thumbnail) > MaxThumbnail ||
		len(a.Waveform) > MaxWaveform || a.DurationMs > MaxDuration {
		return nil, ErrBadManifest
	}
	copy(m.Key[:], a.Key)
	copy(m.PlainSHA256[:], a.PlainSha256)
	for _, h := range a.Index {
		if len(h) != HashSize {
			return nil, ErrBadManifest
		}
		m.Index = append(m.Index, Hash(h))
	}
	if len(m.Thumbnail) == 0 {
		m.Thumbnail = nil
	}
	if len(m.Waveform) == 0 {
		m.Waveform = nil
	}
	return m, nil
}

// safeName accepts a plain base name: no directories, no dot names, no
// control characters, so that a saved file never lands outside its folder.
func safeName(n string) bool {
	if n == "" || len(n) > MaxNameLen || !utf8.ValidString(n) || n == "." || n == ".." {
		return false
	}
	if strings.ContainsAny(n, "/\\") || filepath.Base(n) != n {
		return false
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// CleanName turns a path into a name a manifest accepts.
func CleanName(path string) string {
	n := filepath.Base(path)
	n = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, n)
	for len(n) > MaxNameLen {
		_, size := utf8.DecodeLastRuneInString(n)
		n = n[:len(n)-size]
	}
	if !safeName(n) {
		return "file"
	}
	return n
}
