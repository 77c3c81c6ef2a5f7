package messenger

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/devices"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// contactOf returns n's contact with account acct, or nil.
func contactOf(t testing.TB, n *tnode, acct string) *ContactInfo {
	t.Helper()
	cs, err := n.m.Contacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.AccountID == acct {
			return &c
		}
	}
	return nil
}

func deviceList(t testing.TB, n *tnode) *devices.List {
	t.Helper()
	var l *devices.List
	if err := n.st.View(context.Background(), func(tx *store.Tx) (err error) { l, err = devices.Load(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return l
}

// ownQueueEmpty reports whether n has nothing queued for its own device peer.
func ownQueueEmpty(t testing.TB, n *tnode, peer string) bool {
	var items []store.DeviceItem
	_ = n.st.View(context.Background(), func(tx *store.Tx) (err error) { items, err = tx.DeviceOutbox(peer); return err })
	return len(items) == 0
}

// TestDevSyncContacts: a contact added on the laptop after linking shows
// on the phone, and so do its renaming, its verification (made on the
// phone: back on the laptop) and its deletion; a change older than the
// one applied, arriving late, is not applied, and one applied twice is
// applied once.
func TestDevSyncContacts(t *testing.T) {
	ctx := context.Background()
	laptop, carol := newNode(t, "alice"), newNode(t, "carol")
	phone := linkDevice(t, laptop, "phone")

	addContact(t, laptop, carol)
	acct := carol.m.AccountID()
	eventually(t, 20*time.Second, "carol on the phone", func() bool { return contactOf(t, phone, acct) != nil })
	if c := contactOf(t, phone, acct); c.Name != "carol" || c.PeerID != carol.n.PeerID() {
		t.Fatalf("carol on the phone: %+v", c)
	}
	// The phone can write to her at once: the synced card is a full contact.
	m := send(t, phone, "carol", "hi from alice's phone")
	waitState(t, phone, "carol", m.ID, StateDelivered)

	if _, err := laptop.m.RenameContact(ctx, "carol", "Carol W"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the new name on the phone", func() bool { return contactOf(t, phone, acct).Name == "Carol W" })

	if _, err := phone.m.SetVerified(ctx, "Carol W", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "verified on the laptop", func() bool { return contactOf(t, laptop, acct).Verified })

	// An older rename (made before the last change) arriving late is not
	// applied; the same change twice changes nothing more.
	old := &wirepb.DeviceSync{Version: wire.Version, AtUnixMs: 1, Origin: laptop.n.PeerID(),
		Item: &wirepb.DeviceSync_Contact{Contact: &wirepb.SyncContactState{Account: acct, Card: mustCard(t, phone, acct), Name: "stale"}}}
	applyDirect(t, phone, laptop.n.PeerID(), old)
	applyDirect(t, phone, laptop.n.PeerID(), old)
	if c := contactOf(t, phone, acct); c.Name != "Carol W" || !c.Verified {
		t.Fatalf("a stale change applied: %+v", c)
	}

	if err := laptop.m.DeleteContact(ctx, "Carol W"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "carol deleted on the phone", func() bool { return contactOf(t, phone, acct) == nil })
	if contactOf(t, laptop, acct) != nil {
		t.Fatal("carol still on the laptop")
	}
}

func mustCard(t testing.TB, n *tnode, acct string) []byte {
	t.Helper()
	var b []byte
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(acct)
		if err == nil {
			b = c.Card
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyDirect applies a sync on n as if from its own device peer.
func applyDirect(t testing.TB, n *tnode, peer string, s *wirepb.DeviceSync) {
	t.Helper()
	rx := newBatch()
	if err := n.st.Update(context.Background(), func(tx *store.Tx) error { return n.m.applySync(tx, rx, peer, s) }); err != nil {
		t.Fatal(err)
	}
	for _, f := range rx.after {
		f()
	}
}

// TestDevSyncAcceptedRequest: a stranger's request reaches both devices;
// accepted on the phone, it is a contact on the laptop too.
func TestDevSyncAcceptedRequest(t *testing.T) {
	ctx := context.Background()
	laptop, dave := newNode(t, "alice"), newNode(t, "dave")
	phone := linkDevice(t, laptop, "phone")
	// Dave holds alice's card without the invite's secret: a request.
	if _, err := dave.m.AddContact(ctx, forwardedCard(t, laptop), "alice"); err != nil {
		t.Fatal(err)
	}
	send(t, dave, "alice", "may I?")
	pending := func(n *tnode) bool {
		rs, err := n.m.Requests(ctx)
		return err == nil && len(rs) == 1
	}
	eventually(t, 20*time.Second, "the request on both devices", func() bool { return pending(laptop) && pending(phone) })
	if _, err := phone.m.AcceptRequest(ctx, dave.m.AccountID(), ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "dave a contact on the laptop", func() bool { return contactOf(t, laptop, dave.m.AccountID()) != nil })
	if !hasMessage(t, laptop, "dave", "may I?", false) {
		t.Fatal("the request's message is not in dave's chat on the laptop")
	}
}

// TestDevSyncReadState: bob's message read on the laptop is read on the
// phone, and the phone sends bob no read receipt of its own.
func TestDevSyncReadState(t *testing.T) {
	ctx := context.Background()
	laptop, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, laptop, bob)
	addContact(t, bob, laptop)
	phone := linkDevice(t, laptop, "phone")
	m := send(t, laptop, "bob", "the phone is linked")
	waitState(t, laptop, "bob", m.ID, StateDelivered) // bob learns the card listing the phone
	in := send(t, bob, "alice", "read me")
	unread := func(n *tnode) string {
		for _, x := range messages(t, n, "bob") {
			if x.ID == in.ID {
				return x.State
			}
		}
		return ""
	}
	eventually(t, 20*time.Second, "bob's message on both devices", func() bool {
		return unread(laptop) == StateReceived && unread(phone) == StateReceived
	})
	if n, err := laptop.m.MarkRead(ctx, "bob", 0); err != nil || n != 1 {
		t.Fatalf("mark read: %d, %v", n, err)
	}
	eventually(t, 20*time.Second, "read on the phone", func() bool { return unread(phone) == StateRead })
	waitState(t, bob, "alice", in.ID, StateRead)
	// The phone queued no read receipt: the laptop sent the one.
	err := phone.st.View(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(bob.m.AccountID())
		if err != nil {
			return err
		}
		items, err := tx.Outbox(c.ID)
		for _, it := range items {
			if strings.HasPrefix(it.MessageID, ackItemPrefix+"r") {
				t.Errorf("the phone queued a read receipt: %s", it.MessageID)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDevSyncChannelsAndGroups: a channel followed on the laptop is
// followed on the phone; one created on the laptop is read on the phone
// but posted to from the laptop only; a group created on the laptop is on
// the phone.
func TestDevSyncChannelsAndGroups(t *testing.T) {
	ctx := context.Background()
	laptop, carol := newNode(t, "alice"), newNode(t, "carol")
	phone := linkDevice(t, laptop, "phone")

	ch, err := carol.m.CreateChannel(ctx, "news", false)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := carol.m.ChannelInvite(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.m.FollowChannel(ctx, inv); err != nil {
		t.Fatal(err)
	}
	hasChannel := func(n *tnode, id string) *ChannelInfo {
		cs, err := n.m.Channels(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.ID == id {
				return &c
			}
		}
		return nil
	}
	eventually(t, 20*time.Second, "carol's channel followed on the phone", func() bool { return hasChannel(phone, ch.ID) != nil })

	own, err := laptop.m.CreateChannel(ctx, "alice's notes", true)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "alice's channel on the phone", func() bool { return hasChannel(phone, own.ID) != nil })
	if c := hasChannel(phone, own.ID); c.Owned || !c.Private {
		t.Fatalf("alice's channel on the phone: %+v (want read-only, private)", c)
	}
	if _, err := phone.m.Post(ctx, own.ID, "from the phone", false); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("post from the phone: %v, want ErrNotOwner", err)
	}
	if _, err := laptop.m.Post(ctx, own.ID, "from the laptop", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the laptop's post read on the phone", func() bool {
		_, ps, err := phone.m.ChannelPosts(ctx, own.ID, 0, 10)
		return err == nil && len(ps) == 1 && ps[0].Text == "from the laptop"
	})

	// The same channel again, twice: nothing changes.
	link, err := laptop.m.ChannelInvite(ctx, own.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(link, ChannelLinkPrefix))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := phone.m.Channels(ctx)
	for range 2 {
		applyDirect(t, phone, laptop.n.PeerID(), &wirepb.DeviceSync{Version: wire.Version, AtUnixMs: time.Now().UnixMilli(), Origin: laptop.n.PeerID(),
			Item: &wirepb.DeviceSync_Channel{Channel: raw}})
	}
	if after, _ := phone.m.Channels(ctx); len(after) != len(before) {
		t.Fatalf("channels on the phone: %d, then %d", len(before), len(after))
	}

	g, err := laptop.m.CreateGroup(ctx, "family")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the group on the phone", func() bool {
		gi, err := phone.m.Group(ctx, g.ID)
		return err == nil && gi.Name == "family" && !gi.Gone
	})
	// The same group again, twice: the same ops, the same state.
	gid, _ := hex.DecodeString(g.ID)
	var sg *wirepb.SyncGroupState
	opsOn := func(n *tnode) (k int) {
		_ = n.st.View(ctx, func(tx *store.Tx) error {
			ops, err := tx.GroupOps(gid)
			k = len(ops)
			return err
		})
		return k
	}
	err = laptop.st.View(ctx, func(tx *store.Tx) error {
		gr, err := tx.Group(gid)
		if err != nil {
			return err
		}
		ops, err := tx.GroupOps(gid)
		sg = &wirepb.SyncGroupState{Id: gid, Secret: gr.Secret, Name: gr.Name, CreatedUnixMs: gr.Created.UnixMilli(), Ops: ops}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n0 := opsOn(phone)
	for range 2 {
		applyDirect(t, phone, laptop.n.PeerID(), &wirepb.DeviceSync{Version: wire.Version, AtUnixMs: time.Now().UnixMilli(), Origin: laptop.n.PeerID(),
			Item: &wirepb.DeviceSync_Group{Group: sg}})
	}
	if n := opsOn(phone); n != n0 || n0 == 0 {
		t.Fatalf("group ops on the phone: %d, then %d", n0, n)
	}
	if _, err := laptop.m.GroupLeave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the group left on the phone", func() bool {
		gi, err := phone.m.Group(ctx, g.ID)
		return err == nil && gi.Gone
	})
}

// TestDevSyncDeviceList: a third device linked from the laptop is known
// to the phone (its list, its card and its fan-out), and a device
// revoked from the phone is revoked on the laptop.
func TestDevSyncDeviceList(t *testing.T) {
	ctx := context.Background()
	laptop := newNode(t, "alice")
	phone := linkDevice(t, laptop, "phone")
	tablet := linkDevice(t, laptop, "tablet")
	eventually(t, 20*time.Second, "the tablet in the phone's list", func() bool { return deviceList(t, phone).IsActive(tablet.n.PeerID()) })
	if v, w := deviceList(t, phone).Version, deviceList(t, laptop).Version; v != w {
		t.Fatalf("versions: phone %d, laptop %d", v, w)
	}
	eventually(t, 20*time.Second, "the phone's card lists the tablet", func() bool {
		b, err := phone.m.card(ctx)
		if err != nil {
			return false
		}
		c, err := identity.ParseSignedCard(b)
		return err == nil && c.HasDevice(tablet.n.PeerID())
	})
	// The phone's fan-out includes the tablet: a contact added on the
	// phone reaches the tablet.
	carol := newNode(t, "carol")
	addContact(t, phone, carol)
	eventually(t, 20*time.Second, "carol on the tablet", func() bool { return contactOf(t, tablet, carol.m.AccountID()) != nil })
	eventually(t, 20*time.Second, "carol on the laptop", func() bool { return contactOf(t, laptop, carol.m.AccountID()) != nil })
	// lastSeen of the phone on the laptop comes from this traffic.
	if e := deviceList(t, laptop).Find(phone.n.PeerID()); e == nil || e.LastSeen.IsZero() {
		t.Fatalf("the phone's entry on the laptop: %+v", e)
	}

	revokeDevice(t, phone, tablet)
	eventually(t, 20*time.Second, "the tablet revoked on the laptop", func() bool {
		e := deviceList(t, laptop).Find(tablet.n.PeerID())
		return e != nil && e.Revoked()
	})
	// The laptop's fan-out excludes it: a contact added there does not
	// reach the tablet (it would have by now: the phone has it).
	dave := newNode(t, "dave")
	addContact(t, laptop, dave)
	eventually(t, 20*time.Second, "dave on the phone", func() bool { return contactOf(t, phone, dave.m.AccountID()) != nil })
	if contactOf(t, tablet, dave.m.AccountID()) != nil {
		t.Fatal("the revoked tablet got dave")
	}
	if !ownQueueEmpty(t, laptop, tablet.n.PeerID()) {
		eventually(t, 20*time.Second, "nothing queued for the tablet", func() bool { return ownQueueEmpty(t, laptop, tablet.n.PeerID()) })
	}
}

// TestDevSyncRefused: a DeviceSync from a contact is refused (its
// contact is not added), and so is one from a revoked device of ours.
func TestDevSyncRefused(t *testing.T) {
	ctx := context.Background()
	laptop, bob, carol := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	addContact(t, laptop, bob)
	addContact(t, bob, laptop)
	// Bob pretends to be a device of alice's: a sync naming carol, sent
	// over his own session with her.
	cardB, err := carol.m.card(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &wirepb.DeviceSync{Version: wire.Version, AtUnixMs: time.Now().UnixMilli(), Origin: bob.n.PeerID(),
		Item: &wirepb.DeviceSync_Contact{Contact: &wirepb.SyncContactState{Account: carol.m.AccountID(), Card: cardB, Name: "carol"}}}
	id := make([]byte, wire.MessageIDSize)
	id[0] = 1
	err = bob.st.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(laptop.m.AccountID())
		if err != nil {
			return err
		}
		rec, err := loadRecord(tx, c.ID)
		if err != nil {
			return err
		}
		sealed, err := bob.m.encrypt(rec, c, id, &wirepb.Payload{Version: wire.Version, Body: &wirepb.Payload_Sync{Sync: s}})
		if err != nil {
			return err
		}
		b := newBatch()
		b.setRecord(c.ID, rec)
		if err := b.flush(tx); err != nil {
			return err
		}
		return tx.Enqueue(store.OutboxItem{MessageID: hex.EncodeToString(id), ContactID: c.ID, Payload: sealed.bytes, NextAttempt: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	bob.m.wake()
	eventually(t, 20*time.Second, "bob's sync refused", func() bool {
		var items []store.OutboxItem
		_ = bob.st.View(ctx, func(tx *store.Tx) error {
			c, err := tx.ContactByAccount(laptop.m.AccountID())
			if err == nil {
				items, err = tx.Outbox(c.ID)
			}
			return err
		})
		return len(items) == 0 || items[0].Attempts > 0 && strings.Contains(items[0].LastError, ErrNotOwnDevice.Error())
	})
	if contactOf(t, laptop, carol.m.AccountID()) != nil {
		t.Fatal("alice took a contact from bob's sync")
	}

	// A revoked device's sync is refused too.
	phone := linkDevice(t, laptop, "phone")
	stolenDevice(phone) // it keeps syncing: the laptop must refuse it by itself
	revokeDevice(t, laptop, phone)
	addContact(t, phone, carol)
	eventually(t, 30*time.Second, "the revoked phone's sync refused", func() bool { return ownQueueEmpty(t, phone, laptop.n.PeerID()) })
	if contactOf(t, laptop, carol.m.AccountID()) != nil {
		t.Fatal("the laptop took a contact from the revoked phone")
	}
}

// TestDevSyncUnknownDeviceWaits: a change from a device of ours that this
// device's list does not name yet (linked on another device while this
// one was away) is answered "later", not refused, and applied once the
// list that names the device arrives.
func TestDevSyncUnknownDeviceWaits(t *testing.T) {
	ctx := context.Background()
	laptop := newNode(t, "alice")
	phone := linkDevice(t, laptop, "phone")
	eventually(t, 20*time.Second, "the laptop's queue for the phone empty", func() bool { return ownQueueEmpty(t, laptop, phone.n.PeerID()) })
	phonePeer := phone.n.PeerID()
	phone.pinAddr()
	phone.stop()
	tablet := linkDevice(t, laptop, "tablet")
	// The phone must not learn of the tablet from the laptop yet.
	if err := laptop.st.Update(ctx, func(tx *store.Tx) error { return tx.DeleteDeviceItems(phonePeer) }); err != nil {
		t.Fatal(err)
	}
	laptop.stop()
	phone.start()
	// The tablet tried the phone while it was down: its dials back off;
	// the phone's connection (as when it dials a contact) brings them
	// together at once.
	if err := phone.n.Connect(ctx, tablet.n.PeerID(), tablet.n.Addrs()); err != nil {
		t.Fatal(err)
	}
	carol := newNode(t, "carol")
	addContact(t, tablet, carol)
	eventually(t, 20*time.Second, "the tablet's changes answered later, more times than a refusal is retried", func() bool {
		var items []store.DeviceItem
		_ = tablet.st.View(ctx, func(tx *store.Tx) (err error) { items, err = tx.DeviceOutbox(phone.n.PeerID()); return err })
		return len(items) > 0 && items[0].Attempts >= fanRetryLimit+1 && items[0].LastError == "not acked"
	})
	if contactOf(t, phone, carol.m.AccountID()) != nil {
		t.Fatal("the phone took a change from a device it does not know")
	}
	laptop.start() // its start tells the phone the list, with the tablet
	eventually(t, 20*time.Second, "the tablet in the phone's list", func() bool { return deviceList(t, phone).IsActive(tablet.n.PeerID()) })
	eventually(t, 20*time.Second, "carol on the phone", func() bool { return contactOf(t, phone, carol.m.AccountID()) != nil })
}

// TestDevSyncJoinedGroup: a group bob invites alice to (the invitation
// reaches her primary device, the laptop) is on her phone too.
func TestDevSyncJoinedGroup(t *testing.T) {
	ctx := context.Background()
	laptop, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, laptop, bob)
	addContact(t, bob, laptop)
	phone := linkDevice(t, laptop, "phone")
	g, err := bob.m.CreateGroup(ctx, "book club")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.m.GroupAdd(ctx, g.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the group on the laptop", func() bool {
		gi, err := laptop.m.Group(ctx, g.ID)
		return err == nil && !gi.Gone
	})
	eventually(t, 20*time.Second, "the group on the phone", func() bool {
		gi, err := phone.m.Group(ctx, g.ID)
		return err == nil && !gi.Gone && len(gi.Members) == 2
	})
}

func TestSplitOps(t *testing.T) {
	op := func(n int) []byte { return make([]byte, n) }
	cases := []struct {
		ops   [][]byte
		limit int
		want  []int // ops per part
	}{
		{nil, 100, []int{0}},
		{[][]byte{op(10), op(10)}, 100, []int{2}},
		{[][]byte{op(50), op(50), op(50)}, 120, []int{2, 1}},
		{[][]byte{op(500), op(10)}, 100, []int{1, 1}}, // an op larger than the limit goes alone
	}
	for i, c := range cases {
		parts := splitOps(c.ops, c.limit)
		var got []int
		total := 0
		for _, p := range parts {
			got = append(got, len(p))
			total += len(p)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) || total != len(c.ops) {
			t.Errorf("case %d: parts %v, want %v", i, got, c.want)
		}
	}
}

// TestDevSyncSnapshotOnLink: a device linked after channels were followed
// and settings changed gets them (linking hands over contacts and groups
// only), the settings under the time they were changed.
func TestDevSyncSnapshotOnLink(t *testing.T) {
	ctx := context.Background()
	laptop, carol := newNode(t, "alice"), newNode(t, "carol")
	ch, err := carol.m.CreateChannel(ctx, "news", false)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := carol.m.ChannelInvite(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.m.FollowChannel(ctx, inv); err != nil {
		t.Fatal(err)
	}
	own, err := laptop.m.CreateChannel(ctx, "notes", false)
	if err != nil {
		t.Fatal(err)
	}
	settings := []byte(`{"readReceipts":false,"autoDownloadMB":5}`)
	if err := laptop.st.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(blobSettings, settings) }); err != nil {
		t.Fatal(err)
	}
	if err := laptop.m.SyncSettings(ctx, settings); err != nil {
		t.Fatal(err)
	}
	phone := linkDevice(t, laptop, "phone")
	eventually(t, 20*time.Second, "both channels on the phone", func() bool {
		cs, err := phone.m.Channels(ctx)
		n := 0
		for _, c := range cs {
			if c.ID == ch.ID || c.ID == own.ID {
				n++
			}
		}
		return err == nil && n == 2
	})
	clock := func(n *tnode) (at int64, origin string) {
		_ = n.st.View(ctx, func(tx *store.Tx) (err error) { at, origin, err = tx.SyncClock(settingsKey); return err })
		return at, origin
	}
	wantAt, wantOrigin := clock(laptop)
	eventually(t, 20*time.Second, "the settings applied on the phone, as of their change", func() bool {
		at, origin := clock(phone)
		return at == wantAt && origin == wantOrigin && wantAt != 0
	})
}

// TestOwnInitiationRepeated: until the other device answers on a new
// session, every envelope of ours on it carries the session's
// initiation again. The second batch's initiation names a one-time
// prekey the first one spent: it must be taken as the repeat it is, not
// refused as "already used" (the check made before the write looked for
// our own device's session among contacts' and found none).
func TestOwnInitiationRepeated(t *testing.T) {
	ctx := context.Background()
	laptop, carol := newNode(t, "alice"), newNode(t, "carol")
	phone := linkDevice(t, laptop, "phone")
	phonePeer := phone.n.PeerID()
	eventually(t, 20*time.Second, "the laptop's queue for the phone empty", func() bool { return ownQueueEmpty(t, laptop, phonePeer) })
	// A new session, which the phone has nothing to answer on.
	if err := laptop.st.Update(ctx, func(tx *store.Tx) error { return tx.DeleteDeviceSession(0, phonePeer) }); err != nil {
		t.Fatal(err)
	}
	rejected := phone.m.Faults()[FaultRejected]
	addContact(t, laptop, carol)
	eventually(t, 20*time.Second, "carol on the phone", func() bool { return contactOf(t, phone, carol.m.AccountID()) != nil })
	for _, r := range [][2]string{{"carol", "carol g."}, {"carol g.", "carol garcia"}} {
		if _, err := laptop.m.RenameContact(ctx, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "carol renamed on the phone", func() bool {
			c := contactOf(t, phone, carol.m.AccountID())
			return c != nil && c.Name == r[1]
		})
	}
	if n := phone.m.Faults()[FaultRejected]; n != rejected {
		t.Fatalf("the phone refused %d envelopes of the laptop's new session", n-rejected)
	}
}
