package media

import (
	"encoding/binary"
	"fmt"
)

// errBadWebP is returned (wrapping ErrBadImage) for a WebP file whose
// container does not parse, so its metadata cannot be stripped: it is not
// sent.
var errBadWebP = fmt.Errorf("%w: WebP container", ErrBadImage)

// VP8X flags that announce the metadata chunks.
const (
	webpFlagXMP  = 0x04
	webpFlagEXIF = 0x08
)

// stripWebP removes the EXIF and XMP chunks (camera, location) from a
// WebP file and clears their flags, leaving the image data as it is.
func stripWebP(b []byte) ([]byte, error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return nil, errBadWebP
	}
	if n := int64(binary.LittleEndian.Uint32(b[4:])); n+8 != int64(len(b)) {
		return nil, errBadWebP
	}
	out := make([]byte, 12, len(b))
	copy(out, b[:12])
	for i := 12; i < len(b); {
		if i+8 > len(b) {
			return nil, errBadWebP
		}
		fourcc := string(b[i : i+4])
		n := int(binary.LittleEndian.Uint32(b[i+4:]))
		end := i + 8 + n + n&1 // chunks are padded to an even length
		if n < 0 || end > len(b) || end < i {
			return nil, errBadWebP
		}
		switch fourcc {
		case "EXIF", "XMP ":
		case "VP8X":
			start := len(out)
			out = append(out, b[i:end]...)
			if n > 0 {
				out[start+8] &^= webpFlagEXIF | webpFlagXMP
			}
		default:
			out = append(out, b[i:end]...)
		}
		i = end
	}
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out, nil
}
