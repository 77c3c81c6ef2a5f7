// Package tlsface is the face a node's HTTPS port shows (issue 15):
// nothing on the wire may be constant across samizdat nodes or name the
// software. Each node picks a server name from a list of common names (or
// the operator's own), keeps a certificate shaped like a Let's Encrypt one
// (subject, issuer, validity, serial, extensions) across restarts, renews
// it as certbot would, and serves a small static site of its own. It does
// no I/O and imports nothing of ours.
package tlsface

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
)

// Names are the server names a node picks from (once, then kept) when
// the operator gives none: names of large sites whose blocking would cost a
// censor dearly. They are never looked up. An operator's own domain
// (--tls-name) is better still: it matches the IP it is served from.
var Names = []string{
	"www.microsoft.com", "update.microsoft.com", "learn.microsoft.com", "www.office.com",
	"www.apple.com", "swdist.apple.com", "gateway.icloud.com", "www.samsung.com",
	"dl.google.com", "www.gstatic.com", "fonts.gstatic.com", "www.googletagmanager.com",
	"www.amazon.com", "aws.amazon.com", "s3.amazonaws.com", "d1.awsstatic.com",
	"www.cloudflare.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net", "unpkg.com",
	"www.akamai.com", "www.fastly.com", "www.nvidia.com", "www.intel.com",
	"www.amd.com", "www.cisco.com", "www.oracle.com", "www.ibm.com",
	"www.dell.com", "www.hp.com", "www.lenovo.com", "www.asus.com",
	"www.mozilla.org", "addons.mozilla.org", "www.speedtest.net", "www.bing.com",
	"www.yahoo.com", "www.wikipedia.org", "www.github.com", "objects.githubusercontent.com",
	"www.docker.com", "registry.npmjs.org", "pypi.org", "files.pythonhosted.org",
	"www.zoom.us", "www.spotify.com", "www.booking.com", "www.adobe.com",
}

// PickName returns a random name of Names.
func PickName() string { return Names[mrand.IntN(len(Names))] }

// Certificate shape: Let's Encrypt's, as of 2025-2026.
const (
	certLifetime = 90*24*time.Hour - time.Second
	// RenewBefore is when a node makes a new certificate: 30 days
	// before expiry, as certbot does.
	RenewBefore  = 30 * 24 * time.Hour
	siteSeedSize = 16
)

// ErrIdentity is returned for a malformed TLS identity.
var ErrIdentity = errors.New("p2p: tls identity")

var leIssuers = []string{"E5", "E6", "E7", "E8"}

// New makes a TLS identity for name: a leaf certificate shaped
// like Let's Encrypt's (ECDSA P-256 key, issuer "C=US, O=Let's Encrypt,
// CN=E…", 90 days, an 18-byte serial, its extensions), an intermediate of
// that name, and the seed of the node's static site, all PEM-encoded.
// seed may be nil (a new one is drawn); renewals pass the old one so the
// site stays the same. The certificate chains to no trusted root: the peer
// is authenticated by Noise inside the tunnel.
func New(name string, seed []byte, now time.Time) ([]byte, error) {
	if len(seed) != siteSeedSize {
		seed = make([]byte, siteSeedSize)
		_, _ = rand.Read(seed)
	}
	issuerName := leIssuers[mrand.IntN(len(leIssuers))]
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	root := &x509.Certificate{
		SerialNumber: serial16(), Subject: pkix.Name{Country: []string{"US"}, Organization: []string{"Internet Security Research Group"}, CommonName: "ISRG Root X2"},
		NotBefore: time.Date(2020, 9, 4, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2040, 9, 17, 16, 0, 0, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId: keyID(&rootKey.PublicKey),
	}
	inter := &x509.Certificate{
		SerialNumber: serial16(), Subject: pkix.Name{Country: []string{"US"}, Organization: []string{"Let's Encrypt"}, CommonName: issuerName},
		NotBefore: time.Date(2024, 3, 13, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 3, 12, 23, 59, 59, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		SubjectKeyId: keyID(&interKey.PublicKey), IssuingCertificateURL: []string{"http://x2.i.lencr.org/"},
		CRLDistributionPoints: []string{"http://x2.c.lencr.org/"},
	}
	interDER, err := x509.CreateCertificate(rand.Reader, inter, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("%w: intermediate: %w", ErrIdentity, err)
	}
	inter, err = x509.ParseCertificate(interDER)
	if err != nil {
		return nil, err
	}
	// Issued some time in the last 60 days, so that nodes do not all renew
	// in step, and renewed 30 days before expiry.
	nb := now.Add(-time.Duration(mrand.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Second).UTC()
	lower := strings.ToLower(issuerName)
	leaf := &x509.Certificate{
		SerialNumber: leSerial(), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: nb, NotAfter: nb.Add(certLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, SubjectKeyId: keyID(&leafKey.PublicKey),
		IssuingCertificateURL: []string{"http://" + lower + ".i.lencr.org/"},
		CRLDistributionPoints: []string{fmt.Sprintf("http://%s.c.lencr.org/%d.crl", lower, 1+mrand.IntN(127))},
		Policies:              []x509.OID{mustOID(2, 23, 140, 1, 2, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, fmt.Errorf("%w: leaf: %w", ErrIdentity, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: interDER})
	_ = pem.Encode(&b, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	_ = pem.Encode(&b, &pem.Block{Type: "SITE SEED", Bytes: seed})
	return b.Bytes(), nil
}

// Info reads what a node needs to know of its identity: the
// name it serves, when it expires, and its site seed.
func Info(identity []byte) (name string, notAfter time.Time, seed []byte, err error) {
	id, err := Parse(identity)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	return id.Leaf.Subject.CommonName, id.Leaf.NotAfter, id.Seed, nil
}

// Identity is a parsed identity: the certificate chain with its key, the
// leaf, and the site seed.
type Identity struct {
	Cert tls.Certificate
	Leaf *x509.Certificate
	Seed []byte
}

// Parse reads an identity made by New.
func Parse(b []byte) (*Identity, error) {
	var id Identity
	var certPEM, keyPEM bytes.Buffer
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			_ = pem.Encode(&certPEM, blk)
		case "EC PRIVATE KEY":
			_ = pem.Encode(&keyPEM, blk)
		case "SITE SEED":
			id.Seed = blk.Bytes
		}
	}
	c, err := tls.X509KeyPair(certPEM.Bytes(), keyPEM.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	if len(id.Seed) != siteSeedSize {
		return nil, fmt.Errorf("%w: no site seed", ErrIdentity)
	}
	id.Cert, id.Leaf = c, c.Leaf
	return &id, nil
}

func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	h := sha1.Sum(der)
	return h[:]
}

func serial16() *big.Int {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

// leSerial is 18 bytes whose first is 0x03 or 0x04, like Let's Encrypt's.
func leSerial() *big.Int {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	b[0] = 3 + b[0]&1
	return new(big.Int).SetBytes(b)
}

func mustOID(ids ...uint64) x509.OID {
	o, err := x509.OIDFromInts(ids)
	if err != nil {
		panic(err)
	}
	return o
}

// The static site: a few pages chosen by the node's seed, so that no two
// nodes serve the same bytes and none names the software.

type siteTemplate struct{ title, body string }

var siteTemplates = []siteTemplate{
	{"Welcome to %s", "<h1>Welcome to %s</h1>\n<p>This site is under construction. Please check back soon.</p>"},
	{"%s", "<h1>%s</h1>\n<p>Nothing to see here yet.</p>\n<p>Contact: webmaster@%s</p>"},
	{"%s &mdash; coming soon", "<h1>Coming soon</h1>\n<p>We are working on something new at %s.</p>"},
	{"Index", "<h1>It works!</h1>\n<p>This is the default web page for %s.</p>"},
}

var siteStyles = []string{
	"body{font-family:sans-serif;margin:40px auto;max-width:650px;line-height:1.6;color:#444;padding:0 10px}",
	"body{font-family:Georgia,serif;margin:3em;color:#222;background:#fafafa}h1{font-weight:normal}",
	"body{font:16px/1.5 -apple-system,Segoe UI,Roboto,sans-serif;text-align:center;padding:10% 1em;color:#333}",
	"html{background:#fff}body{width:35em;margin:0 auto;font-family:Tahoma,Verdana,Arial,sans-serif}",
}

// SiteFS builds the node's static site for name from seed.
func SiteFS(name string, seed []byte) fs.FS {
	s := binary.BigEndian.Uint64(seed[:8])
	r := mrand.New(mrand.NewPCG(s, binary.BigEndian.Uint64(seed[8:16])))
	t := siteTemplates[r.IntN(len(siteTemplates))]
	style := siteStyles[r.IntN(len(siteStyles))]
	host := strings.TrimPrefix(name, "www.")
	fill := func(f string) string {
		n := strings.Count(f, "%s")
		args := make([]any, n)
		for i := range args {
			args[i] = host
		}
		return fmt.Sprintf(f, args...)
	}
	index := fmt.Sprintf("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n%s\n</body>\n</html>\n",
		fill(t.title), style, fill(t.body))
	robots := "User-agent: *\nDisallow:\n"
	if r.IntN(2) == 0 {
		robots = "User-agent: *\nDisallow: /private/\n"
	}
	// Modified some days before the seed was drawn; constant for the node.
	mod := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(600 * 24 * time.Hour)))).Truncate(time.Second)
	return memFS{"index.html": {[]byte(index), mod}, "robots.txt": {[]byte(robots), mod}}
}

// Handler serves fsys exactly as Go's static file server does.
func Handler(fsys fs.FS) http.Handler { return http.FileServerFS(fsys) }

// memFS is a read-only in-memory file system of flat files.
type memFS map[string]memFile

type memFile struct {
	data []byte
	mod  time.Time
}

func (m memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		var mod time.Time
		for _, f := range m {
			mod = f.mod
		}
		return &memOpen{name: ".", dir: true, mod: mod, fs: m}, nil
	}
	f, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memOpen{name: path.Base(name), r: bytes.NewReader(f.data), size: int64(len(f.data)), mod: f.mod}, nil
}

type memOpen struct {
	name string
	dir  bool
	r    *bytes.Reader
	size int64
	mod  time.Time
	fs   memFS
	read bool
}

func (f *memOpen) Stat() (fs.FileInfo, error) { return memInfo{f}, nil }
func (f *memOpen) Close() error               { return nil }

func (f *memOpen) Read(b []byte) (int, error) {
	if f.dir {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	return f.r.Read(b)
}

func (f *memOpen) Seek(off int64, whence int) (int64, error) {
	if f.dir {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	return f.r.Seek(off, whence)
}

// ReadDir lists the root (a static server with an index.html never shows
// it, but fs.ReadDirFile is part of a directory's contract).
func (f *memOpen) ReadDir(n int) ([]fs.DirEntry, error) {
	if !f.dir || f.read {
		if n > 0 {
			return nil, io.EOF
		}
		return nil, nil
	}
	f.read = true
	var out []fs.DirEntry
	for name := range f.fs {
		o, _ := f.fs.Open(name)
		st, _ := o.Stat()
		out = append(out, fs.FileInfoToDirEntry(st))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

type memInfo struct{ f *memOpen }

func (i memInfo) Name() string       { return i.f.name }
func (i memInfo) Size() int64        { return i.f.size }
func (i memInfo) ModTime() time.Time { return i.f.mod }
func (i memInfo) IsDir() bool        { return i.f.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.f.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// Digest identifies a site's bytes (tests: no two nodes alike).
func Digest(fsys fs.FS) [32]byte {
	b, _ := fs.ReadFile(fsys, "index.html")
	return sha256.Sum256(b)
}
