package media

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

// exifJPEG encodes img as a JPEG with an EXIF segment (in byte order bo)
// holding an orientation tag and a GPS IFD with a position.
func exifJPEG(t *testing.T, img image.Image, orientation uint16, bo binary.ByteOrder) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	// TIFF header, IFD0 with two entries (orientation, GPS IFD pointer),
	// then the GPS IFD with one ASCII entry pointing at the position.
	tiff := make([]byte, 8+2+2*12+4+2+12+4)
	if bo == binary.LittleEndian {
		copy(tiff, "II")
	} else {
		copy(tiff, "MM")
	}
	bo.PutUint16(tiff[2:], 42)
	bo.PutUint32(tiff[4:], 8)
	bo.PutUint16(tiff[8:], 2)
	e := tiff[10:]
	bo.PutUint16(e[0:], 0x0112)
	bo.PutUint16(e[2:], 3)
	bo.PutUint32(e[4:], 1)
	bo.PutUint16(e[8:], orientation)
	gpsOff := 8 + 2 + 2*12 + 4
	bo.PutUint16(e[12:], 0x8825)
	bo.PutUint16(e[14:], 4)
	bo.PutUint32(e[16:], 1)
	bo.PutUint32(e[20:], uint32(gpsOff))
	pos := []byte("GPS 55.7558N 37.6173E\x00")
	g := tiff[gpsOff:]
	bo.PutUint16(g[0:], 1)
	bo.PutUint16(g[2:], 0x0002)
	bo.PutUint16(g[4:], 2)
	bo.PutUint32(g[6:], uint32(len(pos)))
	bo.PutUint32(g[10:], uint32(len(tiff)))
	tiff = append(tiff, pos...)
	app1 := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(app1)+2))
	out := append([]byte{0xff, 0xd8}, seg...)
	out = append(out, app1...)
	return append(out, buf.Bytes()[2:]...)
}

// halves is a 64x32 picture: red on the left, blue on the right.
func halves() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 64, 32))
	for y := range 32 {
		for x := range 64 {
			c := color.RGBA{220, 20, 20, 255}
			if x >= 32 {
				c = color.RGBA{20, 20, 220, 255}
			}
			img.Set(x, y, c)
		}
	}
	return img
}

func isRed(c color.Color) bool {
	r, _, b, _ := c.RGBA()
	return r > 0x9000 && b < 0x6000
}

func isBlue(c color.Color) bool {
	r, _, b, _ := c.RGBA()
	return b > 0x9000 && r < 0x6000
}

// TestPrepareImageOrientation: a sideways-stored photo comes out upright
// with its EXIF (orientation and position) gone, in both byte orders.
func TestPrepareImageOrientation(t *testing.T) {
	// Where the red (left) half of the stored picture ends up, by
	// orientation: the upright picture's dimensions and a point that must
	// be red and one that must be blue.
	type pt struct{ x, y int }
	cases := []struct {
		o         uint16
		w, h      int
		red, blue pt
	}{
		{1, 64, 32, pt{5, 16}, pt{58, 16}},
		{2, 64, 32, pt{58, 16}, pt{5, 16}},
		{3, 64, 32, pt{58, 16}, pt{5, 16}},
		{4, 64, 32, pt{5, 16}, pt{58, 16}},
		{5, 32, 64, pt{16, 5}, pt{16, 58}},
		{6, 32, 64, pt{16, 5}, pt{16, 58}},
		{7, 32, 64, pt{16, 58}, pt{16, 5}},
		{8, 32, 64, pt{16, 58}, pt{16, 5}},
	}
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, c := range cases {
			in := exifJPEG(t, halves(), c.o, bo)
			if got := jpegOrientation(in); got != int(c.o) {
				t.Fatalf("%v orientation %d read as %d", bo, c.o, got)
			}
			out, thumb, w, h, ok, err := PrepareImage(in, "image/jpeg")
			if err != nil || !ok {
				t.Fatal(ok, err)
			}
			if bytes.Contains(out, []byte("Exif")) || bytes.Contains(out, []byte("GPS")) || bytes.Contains(thumb, []byte("GPS")) {
				t.Errorf("orientation %d: EXIF survived", c.o)
			}
			if w != c.w || h != c.h {
				t.Errorf("orientation %d: %dx%d, want %dx%d", c.o, w, h, c.w, c.h)
			}
			img, err := jpeg.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
				t.Errorf("orientation %d: encoded %v", c.o, b)
			}
			if !isRed(img.At(c.red.x, c.red.y)) || !isBlue(img.At(c.blue.x, c.blue.y)) {
				t.Errorf("orientation %d: not upright (%v at %v, %v at %v)", c.o, img.At(c.red.x, c.red.y), c.red, img.At(c.blue.x, c.blue.y), c.blue)
			}
			if jpegOrientation(out) != orientNormal {
				t.Errorf("orientation %d: output still has an orientation", c.o)
			}
		}
	}
}

func FuzzJPEGOrientation(f *testing.F) {
	var buf bytes.Buffer
	jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 2, 2)), nil)
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xd8, 0xff, 0xe1, 0, 10, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I'})
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := jpegOrientation(b); o < orientNormal || o > orientRotate270 {
			t.Fatalf("orientation %d", o)
		}
	})
}
