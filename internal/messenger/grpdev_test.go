package messenger

import (
	"context"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/media"
)

// Groups and group files with several devices on either side (issue 17,
// issue 16): what a device linked after the group was joined posts, and
// where the members and the account's other devices fetch its files from.

// mediaDevice links a device with a media service of its own to a.
func mediaDevice(t testing.TB, a *tnode, name string) *tnode {
	t.Helper()
	dir := t.TempDir()
	return linkDeviceTuned(t, a, name, func(c *Config) {
		svc, err := media.New(media.Config{Dir: dir, Store: c.Store, Transport: c.Transport.(media.Transport),
			RetryInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Media = svc
	})
}

// TestGrpdevFileInGroupOfOneAccount: a file sent to a group whose only
// member is our account (notes kept across our own devices; a group
// before anyone is added) is checked for holders like any other. The
// check found no other member and dereferenced the nil it had for "never
// checked": the daemon panicked two seconds after the send.
func TestGrpdevFileInGroupOfOneAccount(t *testing.T) {
	ctx := context.Background()
	alice, _ := mediaNode(t, "alice")
	g, err := alice.m.CreateGroup(ctx, "notes")
	if err != nil {
		t.Fatal(err)
	}
	path, _ := writeRandom(t, media.ChunkSize+10)
	gm, err := alice.m.GroupSendFile(ctx, g.ID, path, "a photo")
	if err != nil {
		t.Fatal(err)
	}
	alice.m.checkGroupHolders(ctx) // what the loop does soon after the send
	if tr := transferOf(t, alice, gm.ID); tr.MessageID != gm.ID || tr.Incoming || tr.State == media.StateFailed || tr.Holders != nil {
		t.Fatalf("the sender's transfer: %+v", tr)
	}
}

// TestGrpdevOwnDeviceFileFetchedFromIt: a file the phone posts in a group
// reaches the laptop, the same account's other device, from the phone.
// The laptop recorded it with no source at all: the sender's devices are
// taken from the members' cards, and our own account is skipped there.
func TestGrpdevOwnDeviceFileFetchedFromIt(t *testing.T) {
	ctx := context.Background()
	laptop, _ := mediaNode(t, "alice")
	g, err := laptop.m.CreateGroup(ctx, "notes")
	if err != nil {
		t.Fatal(err)
	}
	phone := mediaDevice(t, laptop, "phone")
	if _, err := phone.m.GroupJoin(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	// The phone's key reaches the laptop with its first post.
	if _, err := phone.m.GroupSend(ctx, g.ID, "from the phone"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the laptop reads the phone", func() bool { return groupHas(t, laptop, g.ID, "from the phone") })
	path, _ := writeRandom(t, 2*media.ChunkSize+10)
	gm, err := phone.m.GroupSendFile(ctx, g.ID, path, "a photo")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the laptop reads the caption", func() bool { return groupHas(t, laptop, g.ID, "a photo") })
	eventually(t, 30*time.Second, "the laptop has the phone's file", func() bool {
		return transferOf(t, laptop, gm.ID).State == media.StateComplete
	})
}
