package media

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/samizdat-im/samizdat/internal/store"
)

// StateWaiting is the state of an incoming file larger than the automatic
// download limit (SetAutoFetch): it is fetched once Request asks for it.
const StateWaiting = "waiting"

// PrepareReader is Prepare for a file read from r (an upload from the web
// app): name is its base name, size its exact length in bytes (a reader
// that ends early or goes on is refused with ErrSizeChanged), and mimeType
// what the uploader says it is ("" to guess from the name and the first
// bytes). JPEG and PNG images are decoded and encoded again (turned
// upright by their EXIF orientation, all metadata dropped) and get a
// preview; WebP images lose their EXIF and XMP chunks; other files are
// sealed as they stream in.
func (s *Service) PrepareReader(r io.Reader, name string, size int64, mimeType string) (*Manifest, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: unknown size", ErrSizeChanged)
	}
	if size > s.cfg.MaxFileSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrTooLarge, name, size, s.cfg.MaxFileSize)
	}
	m := &Manifest{Name: CleanName(name), Size: size, MIME: cleanMIME(mimeType)}
	if _, err := io.ReadFull(rand.Reader, m.Key[:]); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 512)
	if m.MIME == "" {
		m.MIME = mime.TypeByExtension(filepath.Ext(m.Name))
	}
	if m.MIME == "" {
		head, _ := br.Peek(512)
		m.MIME = http.DetectContentType(head)
	}
	m.MIME = cleanMIME(m.MIME)
	var in io.Reader = br
	if (m.MIME == "image/jpeg" || m.MIME == "image/png") && size <= MaxImageBytes {
		b, err := readExact(br, size)
		if err != nil {
			return nil, err
		}
		out, thumb, w, h, ok, err := PrepareImage(b, m.MIME)
		if err != nil {
			return nil, err
		}
		if ok {
			b = out
			if len(thumb) <= MaxThumbnail {
				m.Thumbnail = thumb
			}
			m.Width, m.Height = w, h
		}
		m.Size, in = int64(len(b)), bytes.NewReader(b)
	}
	if strings.HasPrefix(m.MIME, "image/webp") && size <= MaxImageBytes {
		b, err := readExact(br, size)
		if err == nil {
			b, err = stripWebP(b)
		}
		if err != nil {
			return nil, err
		}
		m.Size, in = int64(len(b)), bytes.NewReader(b)
	}
	if err := Seal(s.ch, in, m); err != nil {
		return nil, err
	}
	return m, nil
}

// readExact reads all of r, which must be size bytes long.
func readExact(r io.Reader, size int64) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSizeChanged, err)
	}
	if k, _ := r.Read(make([]byte, 1)); k > 0 {
		return nil, ErrSizeChanged
	}
	return b, nil
}

// cleanMIME keeps a media type ("type/subtype", parameters such as
// "codecs=opus" kept) if it parses and is short, else returns "".
func cleanMIME(t string) string {
	if t == "" || len(t) > MaxMIMELen {
		return ""
	}
	base, params, err := mime.ParseMediaType(t)
	if err != nil || !strings.Contains(base, "/") {
		return ""
	}
	out := mime.FormatMediaType(base, params)
	if len(out) > MaxMIMELen {
		return base
	}
	return out
}

// WriteTo writes the plaintext of a complete file to w, one checked
// chunk at a time (ErrIncomplete while chunks are missing, ErrCorruptFile
// if one does not open; what was written before that stays written).
func WriteTo(ch *Chunks, m *Manifest, w io.Writer) error {
	hashes, missing, err := Missing(ch, m)
	if errors.Is(err, ErrNoChunk) || err == nil && len(missing) > 0 {
		return ErrIncomplete
	} else if err != nil {
		return err
	}
	aead, err := chacha20poly1305.New(m.Key[:])
	if err != nil {
		return err
	}
	var buf []byte
	for i, h := range hashes {
		sealed, err := ch.Get(h)
		if errors.Is(err, ErrNoChunk) {
			return fmt.Errorf("%w: %w", ErrIncomplete, err)
		} else if err != nil {
			return err
		}
		if buf, err = aead.Open(buf[:0], nonce(domainData, i), sealed, nil); err != nil {
			return fmt.Errorf("%w: chunk %d", ErrCorruptFile, i)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// Manifests returns the manifests of those of the messages ids that carry
// a file (a message without one is left out).
func (s *Service) Manifests(ctx context.Context, ids []string) (map[string]*Manifest, error) {
	out := map[string]*Manifest{}
	err := s.cfg.Store.View(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			r, err := getRecord(tx, id)
			if errors.Is(err, ErrNoTransfer) {
				continue
			} else if err != nil {
				return err
			}
			if m, err := ParseManifest(r.Manifest); err == nil {
				out[id] = m
			}
		}
		return nil
	})
	return out, err
}

// SetAutoFetch sets the automatic download limit: incoming files larger
// than limit bytes wait (StateWaiting) until Request asks for them; 0 or
// less fetches every file as it arrives (the default).
func (s *Service) SetAutoFetch(limit int64) {
	s.mu.Lock()
	old := s.autoLimit
	s.autoLimit = max(limit, 0)
	for id, p := range s.prog {
		if p.state == StateWaiting {
			delete(s.prog, id)
		}
	}
	s.mu.Unlock()
	if old != s.autoLimit {
		s.kickLoop()
	}
}

// Request asks for the file of message msgID to be fetched now, whatever
// its size (a file over the automatic limit); it is remembered across
// restarts.
func (s *Service) Request(ctx context.Context, msgID string) error {
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		r, err := getRecord(tx, msgID)
		if err != nil {
			return err
		}
		if !r.Incoming || r.Wanted && !r.Expired {
			return nil
		}
		r.Wanted = true
		if r.Expired { // asked for again: a new clock
			r.Expired, r.Added = false, s.expiry().Now().Unix()
		}
		return putRecord(tx, r)
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	if st := s.prog[msgID].state; st == StateWaiting || st == StateExpired {
		delete(s.prog, msgID)
	}
	s.mu.Unlock()
	s.kickLoop()
	return nil
}

func (s *Service) changed(r record, state string) {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(r.MessageID, r.ContactID, state)
	}
}

func (s *Service) kickLoop() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// waits says whether incoming record r is over the automatic limit and
// not asked for, marking it waiting if so.
func (s *Service) waits(r record) bool {
	s.mu.Lock()
	limit := s.autoLimit
	s.mu.Unlock()
	if limit <= 0 || r.Wanted {
		return false
	}
	m, err := ParseManifest(r.Manifest)
	if err != nil || m.Size <= limit {
		return false
	}
	done := 0
	if _, missing, err := Missing(s.ch, m); err == nil {
		if len(missing) == 0 {
			return false
		}
		done = m.Chunks() - len(missing)
	}
	s.setProg(r.MessageID, progress{done: done, total: m.Chunks(), state: StateWaiting})
	return true
}

// Discard deletes the chunks of a file sealed here (Prepare) whose message
// could not be sent: nobody will ask for them.
func (s *Service) Discard(m *Manifest) { s.removeChunks(m) }
