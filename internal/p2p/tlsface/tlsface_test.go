package tlsface

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// The certificate looks like a Let's Encrypt one and names no software.
func TestTLSIdentityShape(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	id, err := New("www.example.org", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ToLower(id), []byte("samizdat")) {
		t.Fatal("identity PEM names the software")
	}
	p, err := Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	leaf := p.Leaf
	if leaf.Subject.String() != "CN=www.example.org" || !slices.Equal(leaf.DNSNames, []string{"www.example.org"}) {
		t.Fatalf("subject %q names %v", leaf.Subject, leaf.DNSNames)
	}
	if iss := leaf.Issuer; len(iss.Organization) != 1 || iss.Organization[0] != "Let's Encrypt" || iss.Country[0] != "US" || !slices.Contains(leIssuers, iss.CommonName) {
		t.Fatalf("issuer %q", leaf.Issuer)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d != certLifetime {
		t.Fatalf("validity %v", d)
	}
	if leaf.NotBefore.After(now) || leaf.NotAfter.Sub(now) <= RenewBefore {
		t.Fatalf("validity %v – %v at %v: not current or due for renewal at once", leaf.NotBefore, leaf.NotAfter, now)
	}
	if b := leaf.SerialNumber.Bytes(); len(b) != 18 || (b[0] != 3 && b[0] != 4) {
		t.Fatalf("serial %x", b)
	}
	if len(p.Cert.Certificate) != 2 {
		t.Fatalf("chain of %d certificates, want leaf + intermediate", len(p.Cert.Certificate))
	}
	name, _, seed, err := Info(id)
	if err != nil || name != "www.example.org" {
		t.Fatalf("info: %q %v", name, err)
	}
	// A renewal keeps the site.
	id2, err := New("www.example.org", seed, now.Add(70*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, _, seed2, _ := Info(id2)
	if !bytes.Equal(seed, seed2) || Digest(SiteFS(name, seed)) != Digest(SiteFS(name, seed2)) {
		t.Fatal("renewal changed the site")
	}
	// Two nodes serve different bytes.
	other, _ := New("www.example.org", nil, now)
	_, _, seed3, _ := Info(other)
	if Digest(SiteFS(name, seed)) == Digest(SiteFS(name, seed3)) {
		// Four templates × four styles × two robots: a clash is possible
		// but the pages also differ in nothing else; draw seeds until one differs.
		for i := 0; i < 20 && Digest(SiteFS(name, seed)) == Digest(SiteFS(name, seed3)); i++ {
			other, _ = New("www.example.org", nil, now)
			_, _, seed3, _ = Info(other)
		}
		if Digest(SiteFS(name, seed)) == Digest(SiteFS(name, seed3)) {
			t.Fatal("every node serves the same page")
		}
	}
}
