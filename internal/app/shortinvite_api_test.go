package app

import (
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
	"github.com/samizdat-im/samizdat/internal/identity"
)

// TestAPIShortInvite: GET /api/v1/invite gives a short link too, which
// POST /api/v1/contacts accepts; its QR code is drawn on request; a short
// link whose card is another account's, or whose inviter is offline,
// fails with its own error code and stores nothing.
func TestAPIShortInvite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b := startNode(t, "alice"), startNode(t, "bob")
	// Carol goes offline after giving out her link: closed by the test.
	cdir := filepath.Join(t.TempDir(), "carol")
	if _, err := Init(ctx, cdir, "carol", KeySource{NoPassphrase: true}); err != nil {
		t.Fatal(err)
	}
	c, err := Start(ctx, Options{Dir: cdir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var closeC sync.Once
	t.Cleanup(func() { closeC.Do(func() { c.Close() }) })
	ca, cb := apiclient.New(a.APIAddr, a.Token), apiclient.New(b.APIAddr, b.Token)
	inv, err := cb.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !identity.IsShortInvite(inv.Short) || len(inv.Short) > identity.MaxShortInviteLen || identity.IsShortInvite(inv.Link) {
		t.Fatalf("invite: %+v", inv)
	}

	qr := func(n *Node, q url.Values) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.APIAddr+"/api/v1/invite/qr?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+n.Token)
		return http.DefaultClient.Do(req)
	}
	resp, err := qr(b, url.Values{"form": {"short"}, "link": {inv.Short}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("short QR: %d %v", resp.StatusCode, err)
	}
	for _, q := range []url.Values{
		{"form": {"short"}, "link": {inv.Short[:len(inv.Short)-5]}}, // damaged
		{"form": {"bogus"}},
	} {
		resp, err := qr(b, q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("QR of %v: status %d, want 400", q, resp.StatusCode)
		}
	}
	// Only this account's links are drawn.
	if resp, err := qr(a, url.Values{"form": {"short"}, "link": {inv.Short}}); err != nil || resp.StatusCode != 400 {
		t.Errorf("QR of another account's link: %v %v", resp.StatusCode, err)
	}

	// Bob's device and secret, carol's account: the card does not match.
	si, _ := identity.ParseShortInvite(inv.Short)
	si.AccountKey = c.Messenger.Identity().SigningKey()
	mismatch, err := identity.EncodeShortInvite(si)
	if err != nil {
		t.Fatal(err)
	}
	carolShort, err := c.Messenger.ShortInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closeC.Do(func() { c.Close() })
	var ae *apiclient.Error
	if _, err := ca.AddContact(ctx, mismatch, ""); !errors.As(err, &ae) || ae.Code != apiclient.CodeInviteMismatch || ae.Status != 400 {
		t.Errorf("another account's card: %v", err)
	}
	if _, err := ca.AddContact(ctx, carolShort, ""); !errors.As(err, &ae) || ae.Code != apiclient.CodeInviteUnreachable || ae.Status != 502 {
		t.Errorf("offline inviter: %v", err)
	}
	if _, err := ca.AddContact(ctx, inv.Short[:150], ""); !errors.As(err, &ae) || ae.Code != apiclient.CodeBadInvite {
		t.Errorf("truncated: %v", err)
	}
	if cs, err := ca.Contacts(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("contacts after bad links: %+v %v", cs, err)
	}
	ct, err := ca.AddContact(ctx, inv.Short, "")
	if err != nil || ct.Name != "bob" {
		t.Fatalf("add by short link: %+v %v", ct, err)
	}
	raw, _ := json.Marshal(inv)
	var fields map[string]any
	json.Unmarshal(raw, &fields)
	if len(fields) != 3 || fields["short"] == nil {
		t.Errorf("invite JSON: %s", raw)
	}
}
