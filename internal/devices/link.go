package devices

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// LinkScheme starts every link code.
const LinkScheme = "samizdat-link:"

// Sizes and limits of link codes.
const (
	SecretSize     = 16
	checksumSize   = 4
	checksumLabel  = "samizdat/link-code/v1"
	maxLinkAddrs   = 4
	maxLinkCodeLen = 1024
	// DefaultLinkTTL is how long a link code can be used.
	DefaultLinkTTL = 10 * time.Minute
)

// Errors about link codes.
var (
	// ErrBadLink is returned for text that is not a link code, or one
	// that was altered or mistyped (its checksum does not match).
	ErrBadLink = errors.New("not a valid samizdat-link: code (mistyped or altered?)")
	// ErrLinkExpired is returned for a link code past its expiry: show a
	// new one on the new device.
	ErrLinkExpired = errors.New("the link code has expired: show a new one on the new device (samizdat link)")
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Link is a decoded link code: what the existing device learns from the
// new one.
type Link struct {
	DeviceKey ed25519.PublicKey // the new device's transport key
	Secret    []byte            // SecretSize bytes
	Ephemeral *ecdh.PublicKey   // X25519, for this link only
	Expires   time.Time
	Addrs     []string
}

// PendingLink is the new device's side of a link code: the code and the
// private half of its ephemeral key. It is used once.
type PendingLink struct {
	Link
	eph  *ecdh.PrivateKey
	mu   sync.Mutex
	used bool
	bad  int // failed proofs
}

// NewLink makes a link code for a new device with transport key devKey,
// listening on addrs, valid for ttl from now.
func NewLink(rnd io.Reader, devKey ed25519.PublicKey, addrs []string, now time.Time, ttl time.Duration) (*PendingLink, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if len(devKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("devices: device key of %d bytes", len(devKey))
	}
	secret := make([]byte, SecretSize)
	if _, err := io.ReadFull(rnd, secret); err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().GenerateKey(rnd)
	if err != nil {
		return nil, err
	}
	if len(addrs) > maxLinkAddrs {
		addrs = addrs[:maxLinkAddrs]
	}
	return &PendingLink{Link: Link{DeviceKey: devKey, Secret: secret, Ephemeral: eph.PublicKey(),
		Expires: now.Add(ttl).Truncate(time.Second), Addrs: addrs}, eph: eph}, nil
}

// String returns the link code: LinkScheme and the base32 (lower case) of
// a LinkCode message and a 4-byte checksum.
func (l *Link) String() string {
	b := wire.Marshal(&wirepb.LinkCode{Version: wire.Version, DeviceKey: l.DeviceKey, Secret: l.Secret,
		Ephemeral: l.Ephemeral.Bytes(), ExpiresUnix: l.Expires.Unix(), Addrs: l.Addrs})
	b = append(b, linkChecksum(b)...)
	return LinkScheme + strings.ToLower(b32.EncodeToString(b))
}

func linkChecksum(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte(checksumLabel))
	h.Write(b)
	return h.Sum(nil)[:checksumSize]
}

// ParseLink decodes a link code and checks it has not expired at now.
func ParseLink(s string, now time.Time) (*Link, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxLinkCodeLen || !strings.HasPrefix(strings.ToLower(s), LinkScheme) {
		return nil, ErrBadLink
	}
	raw, err := b32.DecodeString(strings.ToUpper(s[len(LinkScheme):]))
	if err != nil || len(raw) <= checksumSize {
		return nil, ErrBadLink
	}
	body, sum := raw[:len(raw)-checksumSize], raw[len(raw)-checksumSize:]
	if !bytes.Equal(sum, linkChecksum(body)) {
		return nil, ErrBadLink
	}
	var w wirepb.LinkCode
	if err := wire.ParseLink(body, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadLink, err)
	}
	if len(w.DeviceKey) != ed25519.PublicKeySize || len(w.Secret) != SecretSize || len(w.Addrs) > maxLinkAddrs {
		return nil, ErrBadLink
	}
	eph, err := ecdh.X25519().NewPublicKey(w.Ephemeral)
	if err != nil {
		return nil, ErrBadLink
	}
	l := &Link{DeviceKey: w.DeviceKey, Secret: w.Secret, Ephemeral: eph, Expires: time.Unix(w.ExpiresUnix, 0), Addrs: w.Addrs}
	if now.After(l.Expires) {
		return nil, ErrLinkExpired
	}
	return l, nil
}

// Burnt reports whether the link code can no longer be used.
func (p *PendingLink) Burnt() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used || p.bad >= maxBadAttempts
}

// burntByProofs reports whether failed proofs (not a use) burnt the code.
func (p *PendingLink) burntByProofs() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.used && p.bad >= maxBadAttempts
}
