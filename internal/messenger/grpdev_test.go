package messenger

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
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

// TestGrpdevLinkedPhoneFileReachesMembers: alice, who made the group,
// links a phone afterwards; a file the phone posts reaches bob while
// alice's laptop is off. Bob took the sender's devices from the card in
// the op that created the group, which lists the laptop alone, and asked
// only the laptop, although the card he holds of alice lists the phone.
func TestGrpdevLinkedPhoneFileReachesMembers(t *testing.T) {
	ctx := context.Background()
	alice, _ := mediaNode(t, "alice")
	bob, _ := mediaNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	g, err := alice.m.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob joins", func() bool {
		gi, err := bob.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2 && !gi.Gone
	})
	phone := mediaDevice(t, alice, "phone")
	m1 := send(t, alice, "bob", "I have a phone now")
	waitState(t, alice, "bob", m1.ID, StateDelivered)
	eventually(t, 20*time.Second, "bob holds alice's card with the phone", func() bool {
		_, lists := heldCardLists(t, bob, alice.m.AccountID(), phone.n.PeerID())
		return lists
	})
	if _, err := phone.m.GroupJoin(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.m.GroupSend(ctx, g.ID, "from alice's phone"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bob reads alice's phone", func() bool { return groupHas(t, bob, g.ID, "from alice's phone") })

	alice.stop()
	path, _ := writeRandom(t, 2*media.ChunkSize+10)
	gm, err := phone.m.GroupSendFile(ctx, g.ID, path, "a photo from the phone")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bob reads the caption", func() bool { return groupHas(t, bob, g.ID, "a photo from the phone") })
	eventually(t, 30*time.Second, "bob has the phone's file", func() bool {
		return transferOf(t, bob, gm.ID).State == media.StateComplete
	})
}

// TestGrpdevKeyReachesDeviceLinkedUnseen: bob links a phone while alice
// is away, and alice makes a group with bob before bob's new card reaches
// her: her invitation, with her sender key, goes to the one device her
// copy of bob's card lists. The phone joins through bob's laptop (which
// hands over no other member's key). Once alice holds the card that
// lists the phone, her key must reach the phone before her next message:
// it was never sent again, and the phone could not read alice until her
// next new key (a removal, a revocation).
func TestGrpdevKeyReachesDeviceLinkedUnseen(t *testing.T) {
	ctx := context.Background()
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, bob, "alice", "hi")
	waitState(t, bob, "alice", m0.ID, StateDelivered)
	alice.pinAddr()
	alice.stop()
	phone := linkDevice(t, bob, "phone")
	// Neither of bob's devices can hand alice the new card before she
	// makes the group.
	bobAcct, phonePeer := bob.m.AccountID(), phone.n.PeerID()
	bob.pinAddr()
	phone.pinAddr()
	bob.stop()
	phone.stop()
	alice.start()
	if _, lists := heldCardLists(t, alice, bobAcct, phonePeer); lists {
		t.Fatal("alice already holds bob's card with the phone")
	}
	g, err := alice.m.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	bob.start()
	phone.start()
	for _, n := range []*tnode{bob, phone} {
		eventually(t, 30*time.Second, n.name+" joins", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 2 && !gi.Gone
		})
	}
	eventually(t, 30*time.Second, "alice holds bob's card with the phone", func() bool {
		_, lists := heldCardLists(t, alice, bob.m.AccountID(), phone.n.PeerID())
		return lists
	})
	if _, err := phone.m.GroupSend(ctx, g.ID, "from bob's phone"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "alice reads bob's phone", func() bool { return groupHas(t, alice, g.ID, "from bob's phone") })
	if _, err := alice.m.GroupSend(ctx, g.ID, "to bob's phone"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bob's laptop reads alice", func() bool { return groupHas(t, bob, g.ID, "to bob's phone") })
	eventually(t, 30*time.Second, "bob's phone reads alice", func() bool { return groupHas(t, phone, g.ID, "to bob's phone") })
}

// TestGrpdevOpReachesDeviceLinkedUnseen: alice removes carol while the
// card she holds of bob does not list the phone bob linked meanwhile, so
// the op goes to bob's laptop alone. The laptop hands the op on to the
// phone: the phone knew of no removal, kept carol as a member, and its
// first post's sender key went to carol, the removed member.
func TestGrpdevOpReachesDeviceLinkedUnseen(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	for _, x := range []*tnode{bob, carol} {
		addContact(t, alice, x)
		addContact(t, x, alice)
	}
	g, err := alice.m.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.m.GroupAdd(ctx, g.ID, "bob", "carol"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{bob, carol} {
		eventually(t, 30*time.Second, n.name+" joins", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3 && !gi.Gone
		})
	}
	carolAcct := carol.m.AccountID()
	alice.pinAddr()
	alice.stop()
	phone := linkDevice(t, bob, "phone")
	bobAcct, phonePeer := bob.m.AccountID(), phone.n.PeerID()
	bob.pinAddr()
	phone.pinAddr()
	bob.stop()
	phone.stop()
	alice.start()
	if _, lists := heldCardLists(t, alice, bobAcct, phonePeer); lists {
		t.Fatal("alice already holds bob's card with the phone")
	}
	if _, err := alice.m.GroupRemove(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "carol is out", func() bool {
		gi, err := carol.m.Group(ctx, g.ID)
		return err == nil && gi.Gone
	})
	carol.stop() // what is sent to her now stays queued
	bob.start()
	phone.start()
	for _, n := range []*tnode{bob, phone} {
		eventually(t, 30*time.Second, n.name+" sees carol removed", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 2 && !gi.Gone
		})
	}
	if _, err := phone.m.GroupSend(ctx, g.ID, "after carol left"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{alice, bob} {
		eventually(t, 30*time.Second, n.name+" reads the phone", func() bool { return groupHas(t, n, g.ID, "after carol left") })
	}
	for _, it := range outboxOf(t, phone, carolAcct) {
		if strings.HasPrefix(it.MessageID, groupItemPrefix) {
			t.Errorf("the phone queued a group control for carol, removed: %s", it.MessageID)
		}
	}
}

// TestGrpdevPhonePostsAtOnce: bob links a phone after he joined and the
// phone posts at once, before anyone has heard of it otherwise; every
// member reads it (alice, bob's contact; carol, who knows bob only from
// the group), and the phone reads them.
func TestGrpdevPhonePostsAtOnce(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	for _, x := range []*tnode{bob, carol} {
		addContact(t, alice, x)
		addContact(t, x, alice)
	}
	g, err := alice.m.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.m.GroupAdd(ctx, g.ID, "bob", "carol"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{bob, carol} {
		eventually(t, 30*time.Second, n.name+" joins", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3 && !gi.Gone
		})
	}
	for _, n := range []*tnode{alice, bob, carol} {
		if _, err := n.m.GroupSend(ctx, g.ID, "hello from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*tnode{alice, bob, carol} {
		for _, from := range []string{"alice", "bob", "carol"} {
			eventually(t, 30*time.Second, n.name+" reads "+from, func() bool { return groupHas(t, n, g.ID, "hello from "+from) })
		}
	}
	phone := linkDevice(t, bob, "phone")
	if _, err := phone.m.GroupJoin(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.m.GroupSend(ctx, g.ID, "from bob's phone"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{alice, bob, carol} {
		eventually(t, 30*time.Second, n.name+" reads bob's phone", func() bool { return groupHas(t, n, g.ID, "from bob's phone") })
	}
	for _, n := range []*tnode{alice, carol} {
		if _, err := n.m.GroupSend(ctx, g.ID, "to the phone, from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, from := range []string{"alice", "carol"} {
		eventually(t, 30*time.Second, "the phone reads "+from, func() bool { return groupHas(t, phone, g.ID, "to the phone, from "+from) })
	}
}

// TestGrpdevMemberPhoneRevokedAcrossRestart: bob (a member, not the
// admin) revokes his phone; alice learns it and restarts before she next
// posts. Her next post is under a new key the phone does not get; what
// the phone posts is refused by alice and by bob's laptop, after their
// restarts too.
func TestGrpdevMemberPhoneRevokedAcrossRestart(t *testing.T) {
	ctx := context.Background()
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	g, err := alice.m.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bob joins", func() bool {
		gi, err := bob.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2 && !gi.Gone
	})
	phone := linkDevice(t, bob, "phone")
	if _, err := phone.m.GroupJoin(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.m.GroupSend(ctx, g.ID, "from bob's phone"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{alice, bob} {
		eventually(t, 30*time.Second, n.name+" reads bob's phone", func() bool { return groupHas(t, n, g.ID, "from bob's phone") })
	}
	if _, err := alice.m.GroupSend(ctx, g.ID, "before the revocation"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the phone reads alice", func() bool { return groupHas(t, phone, g.ID, "before the revocation") })

	stolenDevice(phone)
	revokeDevice(t, bob, phone)
	eventually(t, 30*time.Second, "alice holds bob's card without the phone", func() bool {
		held, lists := heldCardLists(t, alice, bob.m.AccountID(), phone.n.PeerID())
		return held && !lists
	})
	alice.pinAddr()
	bob.pinAddr()
	alice.start2()
	bob.start2()
	pending := pendingCount(t, phone, g.ID)
	for _, n := range []*tnode{alice, bob} {
		if _, err := n.m.GroupSend(ctx, g.ID, "after the revocation, from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "alice reads bob", func() bool { return groupHas(t, alice, g.ID, "after the revocation, from bob") })
	eventually(t, 30*time.Second, "bob reads alice", func() bool { return groupHas(t, bob, g.ID, "after the revocation, from alice") })
	eventually(t, 30*time.Second, "the phone holds both, unread", func() bool { return pendingCount(t, phone, g.ID) >= pending+2 })
	for _, from := range []string{"alice", "bob"} {
		if groupHas(t, phone, g.ID, "after the revocation, from "+from) {
			t.Errorf("the revoked phone reads %s's post", from)
		}
	}
	if _, err := phone.m.GroupSend(ctx, g.ID, "the stolen phone posts"); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	_ = phone.st.View(ctx, func(tx *store.Tx) error {
		ms, err := tx.GroupMessages(groupIDBytes(t, phone, g.ID), 0, 0)
		for _, m := range ms {
			if m.Body == "the stolen phone posts" {
				raw = m.Raw
			}
		}
		return err
	})
	if raw == nil {
		t.Fatal("the phone's post is not stored on the phone")
	}
	for _, n := range []*tnode{alice, bob} {
		gid := groupIDBytes(t, n, g.ID)
		if err := n.m.checkGroupEnvelope(ctx, gid, raw); !errors.Is(err, errDroppedDevice) {
			t.Errorf("%s's verdict on the revoked phone's post: %v, want %v", n.name, err, errDroppedDevice)
		}
		n.m.receiveGroupMessages(ctx, gid, "", "", [][]byte{raw}, false)
		if groupHas(t, n, g.ID, "the stolen phone posts") {
			t.Errorf("%s shows the revoked phone's post", n.name)
		}
	}
}

// TestGrpdevRemoveMemberWithTwoDevices: bob, on a laptop and a phone, is
// removed. Both his devices leave the group, neither gets a key of the
// new epoch, and the remaining members (alice on two devices, carol) read
// each other under it.
func TestGrpdevRemoveMemberWithTwoDevices(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	for _, x := range []*tnode{bob, carol} {
		addContact(t, alice, x)
		addContact(t, x, alice)
	}
	g, err := alice.m.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.m.GroupAdd(ctx, g.ID, "bob", "carol"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{bob, carol} {
		eventually(t, 30*time.Second, n.name+" joins", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3 && !gi.Gone
		})
	}
	// Each member holds the others as contacts before the phones are
	// linked (they take the contacts over).
	for _, n := range []*tnode{alice, bob, carol} {
		if _, err := n.m.GroupSend(ctx, g.ID, "hello from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*tnode{alice, bob, carol} {
		for _, from := range []string{"alice", "bob", "carol"} {
			eventually(t, 30*time.Second, n.name+" reads "+from, func() bool { return groupHas(t, n, g.ID, "hello from "+from) })
		}
	}
	bobPhone := linkDevice(t, bob, "bob's phone")
	alicePhone := linkDevice(t, alice, "alice's phone")
	for _, n := range []*tnode{bobPhone, alicePhone} {
		if _, err := n.m.GroupJoin(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := n.m.GroupSend(ctx, g.ID, "from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*tnode{alice, bob, carol} {
		for _, from := range []string{"bob's phone", "alice's phone"} {
			eventually(t, 30*time.Second, n.name+" reads "+from, func() bool { return groupHas(t, n, g.ID, "from "+from) })
		}
	}
	gi, err := alice.m.GroupRemove(ctx, g.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{bob, bobPhone} {
		eventually(t, 30*time.Second, n.name+" is out", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && gi.Gone
		})
	}
	for _, n := range []*tnode{alicePhone, carol} {
		eventually(t, 30*time.Second, n.name+" sees bob removed", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 2 && !gi.Gone
		})
	}
	for _, n := range []*tnode{alice, alicePhone, carol} {
		if _, err := n.m.GroupSend(ctx, g.ID, "after bob, from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*tnode{alice, alicePhone, carol} {
		for _, from := range []*tnode{alice, alicePhone, carol} {
			if n == from {
				continue
			}
			eventually(t, 30*time.Second, n.name+" reads "+from.name, func() bool { return groupHas(t, n, g.ID, "after bob, from "+from.name) })
		}
	}
	for _, n := range []*tnode{bob, bobPhone} {
		for _, a := range []string{alice.m.AccountID(), carol.m.AccountID()} {
			if e := maxKeyEpoch(t, n, g.ID, a); membershipEpoch(e) >= gi.Epoch {
				t.Errorf("%s holds a key of epoch %d (membership %d) of %s, removed at %d", n.name, e, membershipEpoch(e), a[:8], gi.Epoch)
			}
		}
	}
}

// TestGrpdevLinkedDeviceBesideKeyFromBefore: bob holds alice's one key
// from before sender keys per device (epoch 0, stored under her account),
// and alice links a phone, whose first key is of epoch 0 too. A message of
// the phone that comes before its key must wait for it: it was tried with
// alice's old key, whose signature does not match, and refused as bad
// (the topic validator rejected it, the receiver dropped it), so it was
// never read once the phone's key came.
func TestGrpdevLinkedDeviceBesideKeyFromBefore(t *testing.T) {
	ctx := context.Background()
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	g, err := alice.m.CreateGroup(ctx, "Old")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.m.GroupAdd(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob joins", func() bool {
		gi, err := bob.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2 && !gi.Gone
	})
	if _, err := alice.m.GroupSend(ctx, g.ID, "one"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob reads one", func() bool { return groupHas(t, bob, g.ID, "one") })
	// Bob's key of alice's laptop becomes her one key, as a node before
	// keys per device stored it.
	gid := groupIDBytes(t, bob, g.ID)
	acct := alice.m.AccountID()
	err = bob.st.Update(ctx, func(tx *store.Tx) error {
		ks, err := tx.GroupKeys(gid)
		if err != nil {
			return err
		}
		for _, k := range ks {
			if k.Member == keyOwner(acct, deviceTag(alice.n.PeerID())) {
				if err := tx.PutGroupKey(gid, acct, k.Epoch, k.State); err != nil {
					return err
				}
			}
		}
		return tx.DeleteGroupKeys(gid, keyOwner(acct, deviceTag(alice.n.PeerID())))
	})
	if err != nil {
		t.Fatal(err)
	}
	phone := linkDevice(t, alice, "phone")
	m1 := send(t, alice, "bob", "I have a phone now")
	waitState(t, alice, "bob", m1.ID, StateDelivered)
	eventually(t, 20*time.Second, "bob holds alice's card with the phone", func() bool {
		_, lists := heldCardLists(t, bob, acct, phone.n.PeerID())
		return lists
	})
	// The phone's post, as it reaches bob before the phone's key does.
	s, err := senderkey.New(rand.Reader, keyEpoch(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	dist := s.Distribution().Marshal() // the key as the phone sends it, from its first message on
	id := make([]byte, wire.MessageIDSize)
	rand.Read(id)
	pt := wire.Pad(wire.Marshal(&wirepb.GroupText{Version: wire.Version, MessageId: id, Body: "from the phone", SentAtUnixMs: time.Now().UnixMilli()}))
	msg, err := s.Encrypt(pt)
	if err != nil {
		t.Fatal(err)
	}
	phoneTag := deviceTag(phone.n.PeerID())
	raw := wire.Marshal(&wirepb.GroupEnvelope{Version: wire.Version, Sender: acct, Message: msg, Device: phoneTag})
	if err := bob.m.checkGroupEnvelope(ctx, gid, raw); !errors.Is(err, errNoKey) {
		t.Errorf("bob's verdict on the phone's post before its key: %v, want %v", err, errNoKey)
	}
	bob.m.receiveGroupMessages(ctx, gid, "", "", [][]byte{raw}, false)
	// Then its key.
	err = bob.st.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(acct)
		if err != nil {
			return err
		}
		rx := newBatch()
		gc := &wirepb.GroupControl{GroupId: gid, SenderKey: dist, Device: phoneTag}
		if err := bob.m.receiveGroupControl(tx, rx, c, gc); err != nil {
			return err
		}
		return rx.flush(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !groupHas(t, bob, g.ID, "from the phone") {
		t.Error("bob does not read the phone's post that came before its key")
	}
}

// TestGrpdevOwnKeyReachesDeviceLinkedElsewhere: alice's tablet links a
// phone while her laptop is away; the laptop, back, makes a new key (carol
// left) before it hears of the phone, and sends it to the tablet alone.
// Once the laptop's list has the phone, its key must reach the phone
// before its next message: it never did, and the phone could not read the
// laptop until its next new key.
func TestGrpdevOwnKeyReachesDeviceLinkedElsewhere(t *testing.T) {
	ctx := context.Background()
	laptop, bob, carol := newNode(t, "alice"), newNode(t, "bob"), newNode(t, "carol")
	for _, x := range []*tnode{bob, carol} {
		addContact(t, laptop, x)
		addContact(t, x, laptop)
	}
	g, err := laptop.m.CreateGroup(ctx, "Family")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.m.GroupAdd(ctx, g.ID, "bob", "carol"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{bob, carol} {
		eventually(t, 30*time.Second, n.name+" joins", func() bool {
			gi, err := n.m.Group(ctx, g.ID)
			return err == nil && len(gi.Members) == 3 && !gi.Gone
		})
	}
	for _, n := range []*tnode{laptop, bob, carol} {
		if _, err := n.m.GroupSend(ctx, g.ID, "hello from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*tnode{laptop, bob, carol} {
		for _, from := range []string{"alice", "bob", "carol"} {
			eventually(t, 30*time.Second, n.name+" reads "+from, func() bool { return groupHas(t, n, g.ID, "hello from "+from) })
		}
	}
	tablet := linkDevice(t, laptop, "tablet")
	laptop.pinAddr()
	laptop.stop()
	phone := linkDevice(t, tablet, "phone")
	phonePeer := phone.n.PeerID()
	tablet.pinAddr()
	phone.pinAddr()
	tablet.stop()
	phone.stop()

	laptop.start()
	if _, err := carol.m.GroupLeave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the laptop sees carol gone", func() bool {
		gi, err := laptop.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2
	})
	ownHas := func(peer string) (has bool) {
		_ = laptop.st.View(ctx, func(tx *store.Tx) error {
			own, err := laptop.m.ownOtherDevices(tx)
			for _, d := range own {
				has = has || d.PeerID == peer
			}
			return err
		})
		return has
	}
	if ownHas(phonePeer) {
		t.Fatal("the laptop already lists the phone")
	}
	tablet.start()
	phone.start()
	eventually(t, 30*time.Second, "the laptop lists the phone", func() bool { return ownHas(phonePeer) })
	eventually(t, 30*time.Second, "the phone sees carol gone", func() bool {
		gi, err := phone.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2 && !gi.Gone
	})
	if _, err := laptop.m.GroupSend(ctx, g.ID, "after carol, from the laptop"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{bob, tablet, phone} {
		eventually(t, 30*time.Second, n.name+" reads the laptop", func() bool { return groupHas(t, n, g.ID, "after carol, from the laptop") })
	}
}
