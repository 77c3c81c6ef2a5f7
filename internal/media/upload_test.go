package media

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
)

// TestPrepareReaderVoiceNote: an upload of known size is sealed as it
// streams, keeps the type the browser gave, and carries a voice note's
// duration and waveform through the manifest; WriteTo gives the bytes
// back. A body shorter or longer than announced is refused.
func TestPrepareReaderVoiceNote(t *testing.T) {
	ch, err := OpenChunks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{cfg: Config{MaxFileSize: DefaultMaxFileSize}, ch: ch}
	data := make([]byte, ChunkSize+1000)
	rand.Read(data)
	m, err := s.PrepareReader(bytes.NewReader(data), "../voice note.webm", int64(len(data)), "audio/webm;codecs=opus")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "voice note.webm" || m.MIME != "audio/webm; codecs=opus" || m.Thumbnail != nil {
		t.Fatalf("manifest %q %q", m.Name, m.MIME)
	}
	m.DurationMS, m.Waveform = 4250, []byte{0, 10, 200, 255, 3}
	got, err := ParseManifest(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got.DurationMS != 4250 || !bytes.Equal(got.Waveform, m.Waveform) {
		t.Fatalf("duration %d waveform %v", got.DurationMS, got.Waveform)
	}
	var out bytes.Buffer
	if err := WriteTo(ch, got, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("WriteTo: %v, %d bytes", err, out.Len())
	}
	for name, n := range map[string]int64{"short": int64(len(data)) + 1, "long": int64(len(data)) - 1} {
		if _, err := s.PrepareReader(bytes.NewReader(data), "x.bin", n, ""); !errors.Is(err, ErrSizeChanged) {
			t.Errorf("%s body: %v, want ErrSizeChanged", name, err)
		}
	}
	s.cfg.MaxFileSize = 100
	if _, err := s.PrepareReader(bytes.NewReader(data), "x.bin", int64(len(data)), ""); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	for name, mod := range map[string]func(*Manifest){
		"waveform": func(m *Manifest) { m.Waveform = make([]byte, MaxWaveform+1) },
		"duration": func(m *Manifest) { m.DurationMS = MaxDuration + 1 },
	} {
		c := *got
		mod(&c)
		if _, err := ParseManifest(c.Marshal()); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: %v, want ErrBadManifest", name, err)
		}
	}
}

// TestPrepareReaderImage: an uploaded JPEG with EXIF is turned upright,
// stripped, and gets a preview, as a file from disk does.
func TestPrepareReaderImage(t *testing.T) {
	ch, _ := OpenChunks(t.TempDir())
	s := &Service{cfg: Config{MaxFileSize: DefaultMaxFileSize}, ch: ch}
	in := exifJPEG(t, halves(), 6, binary.BigEndian)
	m, err := s.PrepareReader(bytes.NewReader(in), "photo.jpg", int64(len(in)), "")
	if err != nil {
		t.Fatal(err)
	}
	if m.MIME != "image/jpeg" || m.Width != 32 || m.Height != 64 || len(m.Thumbnail) == 0 {
		t.Fatalf("manifest %s %dx%d thumb %d", m.MIME, m.Width, m.Height, len(m.Thumbnail))
	}
	var out bytes.Buffer
	if err := WriteTo(ch, m, &out); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out.Bytes(), []byte("GPS")) || int64(out.Len()) != m.Size {
		t.Fatal("stored image keeps its EXIF or has the wrong size")
	}
}
