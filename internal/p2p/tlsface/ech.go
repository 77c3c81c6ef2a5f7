package tlsface

// Encrypted Client Hello (issue 15, optional: --ech): the ClientHello a
// censor sees names only a cover name (the ECH config's public name), the
// node's own server name travels encrypted to the node's ECH key (HPKE,
// RFC 9180, by crypto/tls). What this file does is the encoding of the
// config (draft-ietf-tls-esni-22 §4) and its keeping; the cryptography is
// crypto/tls's and crypto/ecdh's.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	mrand "math/rand/v2"

	"golang.org/x/crypto/cryptobyte"
)

// ECHPublicNames are the cover names an ECH node's ClientHellos show when
// the operator gives none. The first is Cloudflare's public name, which
// every ECH connection to a Cloudflare-fronted site sends: blocking it
// blocks all of them (Russia did, in November 2024; docs/CENSORSHIP.md).
var ECHPublicNames = []string{"cloudflare-ech.com"}

// PickECHPublicName returns a random name of ECHPublicNames.
func PickECHPublicName() string { return ECHPublicNames[mrand.IntN(len(ECHPublicNames))] }

// ECH config constants: the draft-22 version, and the HPKE algorithms
// Cloudflare's configs offer (X25519 KEM, HKDF-SHA256, AES-128-GCM or
// ChaCha20-Poly1305).
const (
	echVersion       = 0xfe0d
	hpkeX25519       = 0x0020
	hpkeHKDFSHA256   = 0x0001
	hpkeAES128GCM    = 0x0001
	hpkeChaCha20     = 0x0003
	echMaxNameLength = 0
	maxPublicName    = 255
)

// ErrECH is returned for a malformed ECH key or config.
var ErrECH = errors.New("p2p: ech")

// NewECH makes an ECH key for publicName: an X25519 key and its ECH
// config, PEM-encoded (kept by the node across restarts: its config travels
// in its addresses and must stay valid as long as they do).
func NewECH(publicName string) ([]byte, error) {
	if publicName == "" || len(publicName) > maxPublicName {
		return nil, fmt.Errorf("%w: public name %q", ErrECH, publicName)
	}
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	var id [1]byte
	_, _ = rand.Read(id[:])
	cfg, err := marshalECHConfig(id[0], k.PublicKey().Bytes(), publicName)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "ECH CONFIG", Bytes: cfg})
	_ = pem.Encode(&b, &pem.Block{Type: "ECH PRIVATE KEY", Bytes: k.Bytes()})
	return b.Bytes(), nil
}

// ECH is a parsed ECH key.
type ECH struct {
	// Key is what a server's tls.Config.EncryptedClientHelloKeys takes.
	Key tls.EncryptedClientHelloKey
	// ConfigList is what a client's
	// tls.Config.EncryptedClientHelloConfigList takes.
	ConfigList []byte
	// PublicName is the cover name of the outer ClientHello.
	PublicName string
}

// ParseECH reads a key made by NewECH.
func ParseECH(b []byte) (*ECH, error) {
	var cfg, priv []byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "ECH CONFIG":
			cfg = blk.Bytes
		case "ECH PRIVATE KEY":
			priv = blk.Bytes
		}
	}
	if cfg == nil || priv == nil {
		return nil, fmt.Errorf("%w: no config or key", ErrECH)
	}
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrECH, err)
	}
	pub, name, err := parseECHConfig(cfg)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pub, k.PublicKey().Bytes()) {
		return nil, fmt.Errorf("%w: config and key do not match", ErrECH)
	}
	list := cryptobyte.NewBuilder(nil)
	list.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cfg) })
	return &ECH{
		Key:        tls.EncryptedClientHelloKey{Config: cfg, PrivateKey: priv, SendAsRetry: true},
		ConfigList: list.BytesOrPanic(),
		PublicName: name,
	}, nil
}

// ECHConfigListPublicName returns the public name of the first config of
// an ECHConfigList (to check one received before using it).
func ECHConfigListPublicName(list []byte) (string, error) {
	s := cryptobyte.String(list)
	var configs cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&configs) || !s.Empty() {
		return "", fmt.Errorf("%w: bad config list", ErrECH)
	}
	var version uint16
	var body cryptobyte.String
	start := configs
	if !configs.ReadUint16(&version) || !configs.ReadUint16LengthPrefixed(&body) {
		return "", fmt.Errorf("%w: bad config list", ErrECH)
	}
	_, name, err := parseECHConfig(start[:4+len(body)])
	return name, err
}

// marshalECHConfig encodes an ECHConfig (draft-ietf-tls-esni-22 §4):
//
//	version (2) | length (2) | config_id (1) | kem_id (2) | public_key<2>
//	| cipher_suites<2> (kdf_id, aead_id)… | maximum_name_length (1)
//	| public_name<1> | extensions<2>
func marshalECHConfig(id byte, pub []byte, publicName string) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint16(echVersion)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(id)
		b.AddUint16(hpkeX25519)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(pub) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, aead := range []uint16{hpkeAES128GCM, hpkeChaCha20} {
				b.AddUint16(hpkeHKDFSHA256)
				b.AddUint16(aead)
			}
		})
		b.AddUint8(echMaxNameLength)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(publicName)) })
		b.AddUint16(0) // no extensions
	})
	return b.Bytes()
}

// parseECHConfig reads the public key and public name of one ECHConfig of
// ours (the layout marshalECHConfig writes).
func parseECHConfig(cfg []byte) (pub []byte, name string, err error) {
	s := cryptobyte.String(cfg)
	var version, kem uint16
	var id uint8
	var body, key, suites, pn, exts cryptobyte.String
	var maxLen uint8
	if !s.ReadUint16(&version) || version != echVersion || !s.ReadUint16LengthPrefixed(&body) || !s.Empty() ||
		!body.ReadUint8(&id) || !body.ReadUint16(&kem) || kem != hpkeX25519 ||
		!body.ReadUint16LengthPrefixed(&key) || len(key) != 32 ||
		!body.ReadUint16LengthPrefixed(&suites) || len(suites) == 0 || len(suites)%4 != 0 ||
		!body.ReadUint8(&maxLen) || !body.ReadUint8LengthPrefixed(&pn) || len(pn) == 0 ||
		!body.ReadUint16LengthPrefixed(&exts) || !body.Empty() {
		return nil, "", fmt.Errorf("%w: bad config", ErrECH)
	}
	return []byte(key), string(pn), nil
}
