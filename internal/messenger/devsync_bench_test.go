package messenger

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkDevSyncContactRename is the latency of one change between two
// devices of an account on loopback: the laptop renames a contact, timed
// until the phone shows the new name (one DeviceSync, sealed on the
// devices' session, over a stream, applied; serial, one change at a time).
func BenchmarkDevSyncContactRename(b *testing.B) {
	ctx := context.Background()
	laptop, carol := newNode(b, "alice"), newNode(b, "carol")
	phone := linkDevice(b, laptop, "phone")
	addContact(b, laptop, carol)
	acct := carol.m.AccountID()
	eventually(b, 20*time.Second, "carol on the phone", func() bool { return contactOf(b, phone, acct) != nil })
	events, stop := phone.m.Subscribe()
	defer stop()
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("carol %d", i)
		if _, err := laptop.m.RenameContact(ctx, acct, name); err != nil {
			b.Fatal(err)
		}
		deadline := time.After(20 * time.Second)
		for done := false; !done; {
			select {
			case e := <-events:
				done = e.Type == EventContact && contactOf(b, phone, acct).Name == name
			case <-deadline:
				b.Fatalf("rename %d not on the phone", i)
			}
		}
	}
}
