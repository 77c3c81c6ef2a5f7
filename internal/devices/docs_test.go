package devices

import (
	"os"
	"strings"
	"testing"
)

// TestCLIDocsListErrors: docs/CLI.md ("Linked devices") quotes every
// refusal of linking and revoking exactly as the code words it, so a user
// can look up what they see.
func TestCLIDocsListErrors(t *testing.T) {
	b, err := os.ReadFile("../../docs/CLI.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, "## Linked devices"), strings.Index(doc, "## Invite links")
	if i < 0 || j < i {
		t.Fatal("docs/CLI.md has no Linked devices section")
	}
	sec := strings.Join(strings.Fields(doc[i:j]), " ") // lines are wrapped
	for _, e := range []error{ErrBadLink, ErrLinkExpired, ErrLinkCodeRefused, ErrNewDeviceUnreachable, ErrLinkRefused,
		ErrWrongDevice, ErrLinkCancelled, ErrTooManyDevices, ErrRevoked, ErrLinkBurnt, ErrBadDeviceList, ErrUnknownDevice,
		ErrAmbiguousDevice, ErrRevokeSelf} {
		if !strings.Contains(sec, "`"+e.Error()) {
			t.Errorf("docs/CLI.md, Linked devices, does not quote %q", e.Error())
		}
	}
}
