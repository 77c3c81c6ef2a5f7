package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

func TestPrepareImageStripsMetadata(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := range 480 {
		for x := range 640 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 99, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	// An EXIF APP1 segment right after SOI, as cameras write it.
	secret := []byte("Exif\x00\x00GPS 55.7558N 37.6173E")
	seg := append([]byte{0xff, 0xe1, 0, 0}, secret...)
	binary.BigEndian.PutUint16(seg[2:], uint16(len(secret)+2))
	in := append(append([]byte{0xff, 0xd8}, seg...), buf.Bytes()[2:]...)
	if _, err := jpeg.Decode(bytes.NewReader(in)); err != nil {
		t.Fatalf("test image does not decode: %v", err)
	}
	out, thumb, w, h, ok, err := PrepareImage(in, "image/jpeg")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if bytes.Contains(out, []byte("GPS")) {
		t.Error("metadata survived the re-encoding")
	}
	if w != 640 || h != 480 {
		t.Errorf("dimensions %dx%d", w, h)
	}
	ti, err := jpeg.Decode(bytes.NewReader(thumb))
	if err != nil {
		t.Fatal(err)
	}
	if b := ti.Bounds(); b.Dx() != ThumbSide || b.Dy() != 120 {
		t.Errorf("thumbnail is %v", b)
	}
	if len(thumb) > MaxThumbnail {
		t.Errorf("thumbnail of %d bytes", len(thumb))
	}
}

func TestPrepareImageRefusesBomb(t *testing.T) {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
	b := buf.Bytes()
	// IHDR data starts at 16: width, height; its CRC follows the 13 bytes.
	binary.BigEndian.PutUint32(b[16:], 100000)
	binary.BigEndian.PutUint32(b[20:], 100000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	if _, _, _, _, _, err := PrepareImage(b, "image/png"); !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("100000x100000 PNG: %v, want ErrImageTooLarge", err)
	}
}

// TestPrepareImageRefusesJPEGBomb: a JPEG whose frame header claims
// 65000×65000 pixels is refused from that header, before any decoding.
func TestPrepareImageRefusesJPEGBomb(t *testing.T) {
	var buf bytes.Buffer
	jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), nil)
	b := buf.Bytes()
	sof := bytes.Index(b, []byte{0xff, 0xc0})
	if sof < 0 {
		t.Fatal("no baseline frame header")
	}
	// SOF0: marker, length (2), precision (1), height (2), width (2).
	binary.BigEndian.PutUint16(b[sof+5:], 65000)
	binary.BigEndian.PutUint16(b[sof+7:], 65000)
	if _, _, _, _, _, err := PrepareImage(b, "image/jpeg"); !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("65000x65000 JPEG: %v, want ErrImageTooLarge", err)
	}
}
