package identity

import (
	"fmt"
	"io"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// WriteQR renders text as a QR code for a terminal, two modules per
// character cell with half blocks, dark on light with a quiet zone.
func WriteQR(w io.Writer, text string) error {
	q, err := qrcode.New(text, qrLevel(text))
	if err != nil {
		return fmt.Errorf("qr code: %w", err)
	}
	bm := q.Bitmap() // includes the quiet zone; true = dark
	var sb strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top := bm[y][x]
			bottom := y+1 < len(bm) && bm[y+1][x]
			// Light cells are printed as blocks so the code reads on dark
			// terminals too (inverted colours confuse many scanners).
			switch {
			case !top && !bottom:
				sb.WriteRune('█')
			case !top && bottom:
				sb.WriteRune('▀')
			case top && !bottom:
				sb.WriteRune('▄')
			default:
				sb.WriteRune(' ')
			}
		}
		sb.WriteByte('\n')
	}
	_, err = io.WriteString(w, sb.String())
	return err
}

// QRPNG returns text as a QR code PNG image of the given size in pixels.
func QRPNG(text string, size int) ([]byte, error) {
	return qrcode.Encode(text, qrLevel(text), size)
}

// qrLevel picks the error correction: medium (15 % of the code may be
// damaged) for texts as short as a short invite, which still fit a small
// code; low for long texts, whose code is large enough already.
func qrLevel(text string) qrcode.RecoveryLevel {
	if len(text) <= MaxShortInviteLen {
		return qrcode.Medium
	}
	return qrcode.Low
}

// QRVersion returns the version (size class, 1 to 40: 17+4·v modules a
// side) of the QR code WriteQR and QRPNG draw for text.
func QRVersion(text string) (int, error) {
	q, err := qrcode.New(text, qrLevel(text))
	if err != nil {
		return 0, fmt.Errorf("qr code: %w", err)
	}
	return q.VersionNumber, nil
}
