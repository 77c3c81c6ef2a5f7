package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

type cliContact struct {
	Name      string `json:"name"`
	AccountID string `json:"accountId"`
}

func (p *profile) contactNamed(acct string) string {
	p.t.Helper()
	var cs []cliContact
	if err := json.Unmarshal([]byte(p.must("contacts", "--json")), &cs); err != nil {
		p.t.Fatal(err)
	}
	for _, c := range cs {
		if c.AccountID == acct {
			return c.Name
		}
	}
	return ""
}

// TestCLIDeviceSync: after linking, what alice changes on one device
// follows on the other (issue 17): a contact added on the laptop appears
// on the phone (which can write to it at once), renamed on the laptop it
// is renamed on the phone, and deleted on the phone it is gone from the
// laptop; the account's settings follow, each device's own (notifications)
// stay.
func TestCLIDeviceSync(t *testing.T) {
	t.Parallel()
	alice, bob, phone := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "phone")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.start()
	bob.start()
	linkNew(t, phone, alice, "phone")
	phone.start()

	// A contact added on the laptop after linking.
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")))
	bobAcct := mustAccount(t, bob)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []*profile{alice, phone} {
				for _, l := range strings.Split(p.log.String(), "\n") {
					if strings.Contains(l, "evice") || strings.Contains(l, "ync") || strings.Contains(l, "level=WARN") {
						t.Logf("%s: %s", p.name, l)
					}
				}
			}
		}
	})
	eventuallyQuick(t, "bob on the phone", func() (bool, bool) { n, ok := phone.quickContactNamed(bobAcct); return n == "bob", ok },
		func() bool { return phone.contactNamed(bobAcct) == "bob" })
	id := strings.TrimSpace(phone.must("send", "bob", "hello from alice's phone"))
	phone.waitState("bob", id, "delivered")
	waitMessage(t, alice, "bob", "hello from alice's phone", true)

	alice.must("contacts", "rename", "bob", "Bob", "B.")
	eventuallyQuick(t, "bob renamed on the phone", func() (bool, bool) { n, ok := phone.quickContactNamed(bobAcct); return n == "Bob B.", ok },
		func() bool { return phone.contactNamed(bobAcct) == "Bob B." })
	phone.fails("no such contact", "contacts", "rename", "nobody", "x")

	ctx := context.Background()
	st, err := alice.api().Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	phoneBefore, err := phone.api().Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.AutoDownloadMB, st.ReadReceipts, st.NotifyMessages = 7, false, !phoneBefore.NotifyMessages
	if _, err := alice.api().PutSettings(ctx, st); err != nil {
		t.Fatal(err)
	}
	eventuallyCLI(t, "the settings on the phone", func() bool {
		got, err := phone.api().Settings(ctx)
		return err == nil && got.AutoDownloadMB == 7 && !got.ReadReceipts
	})
	if got, _ := phone.api().Settings(ctx); got.NotifyMessages != phoneBefore.NotifyMessages {
		t.Fatal("a device's own notification setting followed the laptop's")
	}

	phone.must("contacts", "delete", "Bob B.")
	eventuallyQuick(t, "bob deleted on the laptop", func() (bool, bool) { n, ok := alice.quickContactNamed(bobAcct); return n == "", ok },
		func() bool { return alice.contactNamed(bobAcct) == "" })
}
