package media

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
)

// Image limits: dimensions are read from the header first, so a
// decompression bomb is refused before it is decoded.
const (
	MaxImageBytes  = 64 << 20 // larger images are sent as they are, no preview
	MaxImagePixels = 50_000_000
	ThumbSide      = 160 // longest side of the inline preview
	thumbQuality   = 60
	reencodeJPEG   = 90
)

// ErrImageTooLarge is returned by PrepareImage for an image whose
// dimensions exceed MaxImagePixels.
var ErrImageTooLarge = errors.New("media: image dimensions too large")

// ErrBadImage is returned for an image that does not decode (or a WebP
// whose metadata cannot be stripped): it is not sent.
var ErrBadImage = errors.New("media: not a readable image")

// PrepareImage decodes a JPEG or PNG and encodes it again, which drops
// every metadata block (EXIF location, camera, comments), and makes the
// inline preview. A JPEG's EXIF orientation is applied to the pixels
// first, so the picture stays upright without the tag; w and h are the
// upright dimensions. Other types are returned as they are, ok false.
func PrepareImage(b []byte, mime string) (out, thumb []byte, w, h int, ok bool, err error) {
	if mime != "image/jpeg" && mime != "image/png" {
		return b, nil, 0, 0, false, nil
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, nil, 0, 0, false, fmt.Errorf("%w (%s): %v", ErrBadImage, mime, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return nil, nil, 0, 0, false, fmt.Errorf("%w: %dx%d", ErrImageTooLarge, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, nil, 0, 0, false, fmt.Errorf("%w (%s): %v", ErrBadImage, mime, err)
	}
	if format == "jpeg" {
		img = orient(img, jpegOrientation(b))
	}
	var buf bytes.Buffer
	switch format {
	case "jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: reencodeJPEG})
	default:
		err = png.Encode(&buf, img)
	}
	if err != nil {
		return nil, nil, 0, 0, false, fmt.Errorf("media: encode image: %w", err)
	}
	var tb bytes.Buffer
	if err := jpeg.Encode(&tb, Thumbnail(img, ThumbSide), &jpeg.Options{Quality: thumbQuality}); err != nil {
		return nil, nil, 0, 0, false, fmt.Errorf("media: encode preview: %w", err)
	}
	return buf.Bytes(), tb.Bytes(), img.Bounds().Dx(), img.Bounds().Dy(), true, nil
}

// Thumbnail scales img down so that its longer side is at most side, each
// output pixel the average of the source pixels it covers (a box filter).
func Thumbnail(img image.Image, side int) *image.RGBA {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	dw, dh := sw, sh
	if sw > side || sh > side {
		if sw >= sh {
			dw, dh = side, max(1, sh*side/sw)
		} else {
			dw, dh = max(1, sw*side/sh), side
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		y0, y1 := b.Min.Y+y*sh/dh, b.Min.Y+max((y+1)*sh/dh, y*sh/dh+1)
		for x := range dw {
			x0, x1 := b.Min.X+x*sw/dw, b.Min.X+max((x+1)*sw/dw, x*sw/dw+1)
			var r, g, bl, a, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					cr, cg, cb, ca := img.At(sx, sy).RGBA()
					r, g, bl, a, n = r+uint64(cr), g+uint64(cg), bl+uint64(cb), a+uint64(ca), n+1
				}
			}
			dst.SetRGBA(x, y, color.RGBA{uint8(r / n >> 8), uint8(g / n >> 8), uint8(bl / n >> 8), uint8(a / n >> 8)})
		}
	}
	return dst
}
