package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func riff(chunks ...[]byte) []byte {
	body := []byte("WEBP")
	for _, c := range chunks {
		body = append(body, c...)
	}
	out := []byte("RIFF\x00\x00\x00\x00")
	binary.LittleEndian.PutUint32(out[4:], uint32(len(body)))
	return append(out, body...)
}

func chunk(fourcc string, data []byte) []byte {
	c := []byte(fourcc + "\x00\x00\x00\x00")
	binary.LittleEndian.PutUint32(c[4:], uint32(len(data)))
	c = append(c, data...)
	if len(data)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

// TestStripWebP: the EXIF and XMP chunks of a WebP go, with their flags;
// the image chunks stay byte for byte; a broken container is refused.
func TestStripWebP(t *testing.T) {
	vp8x := chunk("VP8X", []byte{webpFlagEXIF | webpFlagXMP | 0x10, 0, 0, 0, 9, 0, 0, 9, 0, 0})
	img := chunk("VP8L", []byte("pixels!")) // odd: padded
	exif := chunk("EXIF", []byte("MM\x00\x2aGPS 55.7558N 37.6173E"))
	xmp := chunk("XMP ", []byte("<x:xmpmeta>GPSLatitude 55.75</x:xmpmeta>"))
	out, err := stripWebP(riff(vp8x, img, exif, xmp))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("GPS")) || bytes.Contains(out, []byte("EXIF")) || bytes.Contains(out, []byte("XMP ")) {
		t.Fatalf("metadata survived: %q", out)
	}
	wantVP8X := chunk("VP8X", []byte{0x10, 0, 0, 0, 9, 0, 0, 9, 0, 0})
	if want := riff(wantVP8X, img); !bytes.Equal(out, want) {
		t.Fatalf("stripped = %q\nwant %q", out, want)
	}
	for name, b := range map[string][]byte{
		"not RIFF":      []byte("GIF89a......"),
		"wrong size":    append(riff(img), 0),
		"chunk too big": riff([]byte("VP8L\xff\xff\x00\x00abc")),
		"cut header":    riff([]byte("VP8")),
	} {
		if _, err := stripWebP(b); !errors.Is(err, ErrBadImage) {
			t.Errorf("%s: %v, want ErrBadImage", name, err)
		}
	}
}

func FuzzStripWebP(f *testing.F) {
	f.Add(riff(chunk("VP8X", make([]byte, 10)), chunk("EXIF", []byte("x"))))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := stripWebP(b)
		if err != nil {
			return
		}
		again, err := stripWebP(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("stripping twice changes the file: %v", err)
		}
	})
}
