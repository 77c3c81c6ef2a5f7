package wire

// Plaintexts are padded before encryption so that ciphertext lengths fall
// into a few buckets and leak little about the message (DESIGN §5). The
// scheme is ISO/IEC 7816-4: a 0x80 byte, then zeros up to the bucket size.

// Padding buckets: powers of two from MinBucket up to BigBucket, then
// multiples of BigBucket.
const (
	MinBucket = 256
	BigBucket = 64 << 10
)

// PaddedSize returns the bucket size for n bytes of content (which needs
// at least n+1 bytes: the 0x80 marker).
func PaddedSize(n int) int {
	need := n + 1
	if need > BigBucket {
		return (need + BigBucket - 1) / BigBucket * BigBucket
	}
	size := MinBucket
	for size < need {
		size *= 2
	}
	return size
}

// Pad returns b padded to its bucket. b is not modified.
func Pad(b []byte) []byte {
	out := make([]byte, PaddedSize(len(b)))
	copy(out, b)
	out[len(b)] = 0x80
	return out
}

// Unpad strips the padding added by Pad. It returns a subslice of b.
func Unpad(b []byte) ([]byte, error) {
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case 0:
			continue
		case 0x80:
			return b[:i], nil
		default:
			return nil, ErrPadding
		}
	}
	return nil, ErrPadding
}
