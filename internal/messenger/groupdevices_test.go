package messenger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/crypto/senderkey"
	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/store"
	"github.com/samizdat-im/samizdat/internal/wire"
	"github.com/samizdat-im/samizdat/internal/wire/wirepb"
)

// heldCardLists reports whether n holds acct's card and whether it lists
// the device peer.
func heldCardLists(t testing.TB, n *tnode, acct, peer string) (held, lists bool) {
	t.Helper()
	_ = n.st.View(context.Background(), func(tx *store.Tx) error {
		c, err := tx.ContactByAccount(acct)
		if err != nil {
			return err
		}
		card, err := identity.ParseSignedCard(c.Card)
		if err != nil {
			return err
		}
		held, lists = true, card.HasDevice(peer)
		return nil
	})
	return held, lists
}

// groupMessageFrom returns n's stored message of the group with text, and
// whether it was found.
func groupMessageFrom(t testing.TB, n *tnode, ref, text string) (GroupMessage, bool) {
	t.Helper()
	_, ms, err := n.m.GroupMessages(context.Background(), ref, 0, 0)
	if err != nil {
		t.Fatalf("%s: group messages: %v", n.name, err)
	}
	for _, m := range ms {
		if m.Text == text {
			return m, true
		}
	}
	return GroupMessage{}, false
}

// pendingCount is the number of n's group messages it holds but cannot
// read (no key).
func pendingCount(t testing.TB, n *tnode, gidHex string) int {
	t.Helper()
	k := 0
	_ = n.st.View(context.Background(), func(tx *store.Tx) error {
		g, err := resolveGroup(tx, gidHex)
		if err != nil {
			return err
		}
		ms, err := tx.PendingGroupMessages(g.ID)
		k = len(ms)
		return err
	})
	return k
}

// TestGroupLinkedDevice is issue 17's groups on several devices: a device
// linked after the group was joined posts with a sender key of its own;
// the account's other device and another member read it as the one
// account; each reads the others. Once the device is revoked, the other
// device and the other member each make a new key before their next
// message, which the revoked device receives and cannot read, and what it
// still posts is refused as a revoked device's.
func TestGroupLinkedDevice(t *testing.T) {
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
	eventually(t, 20*time.Second, "bob joins", func() bool {
		gi, err := bob.m.Group(ctx, g.ID)
		return err == nil && len(gi.Members) == 2 && !gi.Gone
	})
	for _, n := range []*tnode{alice, bob} {
		if _, err := n.m.GroupSend(ctx, g.ID, "before the phone, from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "bob reads alice", func() bool { return groupHas(t, bob, g.ID, "before the phone, from alice") })
	eventually(t, 20*time.Second, "alice reads bob", func() bool { return groupHas(t, alice, g.ID, "before the phone, from bob") })

	phone := linkDevice(t, alice, "phone")
	// Bob learns alice's card that lists the phone with her next message.
	m1 := send(t, alice, "bob", "I have a phone now")
	waitState(t, alice, "bob", m1.ID, StateDelivered)
	eventually(t, 20*time.Second, "bob holds alice's card with the phone", func() bool {
		_, lists := heldCardLists(t, bob, alice.m.AccountID(), phone.n.PeerID())
		return lists
	})
	if _, err := phone.m.GroupJoin(ctx, g.ID); err != nil {
		t.Fatal(err)
	}

	// The phone posts (its own key); the laptop and bob read it as alice.
	// The message is one sender-key encryption; its new key, one 1:1
	// encryption per device of the other members (bob's one device; the
	// laptop's copy is sealed by the device outbox).
	e0 := phone.m.GroupEncryptions()
	if _, err := phone.m.GroupSend(ctx, g.ID, "from the phone"); err != nil {
		t.Fatalf("the linked device cannot post: %v", err)
	}
	if e1 := phone.m.GroupEncryptions(); e1.SenderKey-e0.SenderKey != 1 || e1.Pairwise-e0.Pairwise != 1 {
		t.Errorf("the phone's first post cost %d sender-key and %d 1:1 encryptions, want 1 and 1", e1.SenderKey-e0.SenderKey, e1.Pairwise-e0.Pairwise)
	}
	e0 = phone.m.GroupEncryptions()
	if _, err := phone.m.GroupSend(ctx, g.ID, "from the phone again"); err != nil {
		t.Fatal(err)
	}
	if e1 := phone.m.GroupEncryptions(); e1.SenderKey-e0.SenderKey != 1 || e1.Pairwise-e0.Pairwise != 0 {
		t.Errorf("the phone's next post cost %d sender-key and %d 1:1 encryptions, want 1 and 0", e1.SenderKey-e0.SenderKey, e1.Pairwise-e0.Pairwise)
	}
	for _, n := range []*tnode{bob, alice} {
		eventually(t, 30*time.Second, n.name+" reads the phone", func() bool { return groupHas(t, n, g.ID, "from the phone") })
		gm, _ := groupMessageFrom(t, n, g.ID, "from the phone")
		if gm.Sender != alice.m.AccountID() {
			t.Errorf("%s shows the phone's post from %s, want alice", n.name, identity.Short(gm.Sender))
		}
		if gm.Outgoing != (n == alice) {
			t.Errorf("%s shows the phone's post with outgoing %v", n.name, gm.Outgoing)
		}
	}
	// The phone reads the laptop and bob (keys handed over at linking).
	for _, n := range []*tnode{alice, bob} {
		if _, err := n.m.GroupSend(ctx, g.ID, "to the phone, from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, from := range []string{"alice", "bob"} {
		eventually(t, 30*time.Second, "the phone reads "+from, func() bool { return groupHas(t, phone, g.ID, "to the phone, from "+from) })
	}
	bobMembers, err := bob.m.Group(ctx, g.ID)
	if err != nil || len(bobMembers.Members) != 2 {
		t.Fatalf("bob's group: %+v, %v (want two members: one alice)", bobMembers, err)
	}

	// Revoked on the laptop; bob learns it with alice's next message.
	stolenDevice(phone) // it keeps posting: bob and the laptop must refuse it by themselves
	revokeDevice(t, alice, phone)
	m2 := send(t, alice, "bob", "the phone is gone")
	waitState(t, alice, "bob", m2.ID, StateDelivered)
	eventually(t, 20*time.Second, "bob holds alice's card without the phone", func() bool {
		held, lists := heldCardLists(t, bob, alice.m.AccountID(), phone.n.PeerID())
		return held && !lists
	})
	before := pendingCount(t, phone, g.ID)
	epochBefore := maxKeyEpoch(t, bob, g.ID, alice.m.AccountID())
	for _, n := range []*tnode{alice, bob} {
		if _, err := n.m.GroupSend(ctx, g.ID, "after the revocation, from "+n.name); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "bob reads the laptop after the revocation", func() bool {
		return groupHas(t, bob, g.ID, "after the revocation, from alice")
	})
	eventually(t, 30*time.Second, "the laptop reads bob after the revocation", func() bool {
		return groupHas(t, alice, g.ID, "after the revocation, from bob")
	})
	// The phone received both (it is still on the topic) and reads neither.
	eventually(t, 30*time.Second, "the revoked phone holds both new messages", func() bool { return pendingCount(t, phone, g.ID) >= before+2 })
	for _, from := range []string{"alice", "bob"} {
		if groupHas(t, phone, g.ID, "after the revocation, from "+from) {
			t.Errorf("the revoked phone reads %s's message sent after the revocation", from)
		}
	}
	if after := maxKeyEpoch(t, bob, g.ID, alice.m.AccountID()); after <= epochBefore {
		t.Errorf("bob's keys of alice: epoch %d before, %d after (want a new one)", epochBefore, after)
	}

	// What the revoked phone posts is refused, by bob and by the laptop.
	if _, err := phone.m.GroupSend(ctx, g.ID, "the stolen phone posts"); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	_ = phone.st.View(ctx, func(tx *store.Tx) error {
		gr, err := resolveGroup(tx, g.ID)
		if err != nil {
			return err
		}
		ms, err := tx.GroupMessages(gr.ID, 0, 0)
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
	if env, err := wire.ParseGroupEnvelope(raw); err != nil || !bytes.Equal(env.Device, deviceTag(phone.n.PeerID())) {
		t.Fatalf("the phone's envelope names device %x (%v), want its tag", env.GetDevice(), err)
	}
	for _, n := range []*tnode{bob, alice} {
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

func groupIDBytes(t testing.TB, n *tnode, ref string) []byte {
	t.Helper()
	var gid []byte
	err := n.st.View(context.Background(), func(tx *store.Tx) error {
		g, err := resolveGroup(tx, ref)
		if err == nil {
			gid = g.ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return gid
}

// maxKeyEpoch is the greatest epoch of the sender keys n holds of acct's
// devices.
func maxKeyEpoch(t testing.TB, n *tnode, ref, acct string) uint32 {
	t.Helper()
	var mx uint32
	gid := groupIDBytes(t, n, ref)
	_ = n.st.View(context.Background(), func(tx *store.Tx) error {
		ks, err := tx.GroupKeys(gid)
		for _, k := range ks {
			if k.Member == acct || strings.HasPrefix(k.Member, acct+"/") {
				mx = max(mx, k.Epoch)
			}
		}
		return err
	})
	return mx
}

// TestGroupKeysFromBefore: keys and envelopes from nodes before sender
// keys per device. A member's one key (stored under the account alone)
// reads that member's envelope that names no device, and also one that
// names its device (a member that upgraded keeps its key until the next
// epoch).
func TestGroupKeysFromBefore(t *testing.T) {
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

	// Bob's key of alice's device becomes the account's one key, as a
	// node before this change would have stored it.
	gid := groupIDBytes(t, bob, g.ID)
	acct, dev := alice.m.AccountID(), alice.n.PeerID()
	err = bob.st.Update(ctx, func(tx *store.Tx) error {
		ks, err := tx.GroupKeys(gid)
		if err != nil {
			return err
		}
		moved := 0
		for _, k := range ks {
			if k.Member == keyOwner(acct, deviceTag(dev)) {
				if err := tx.PutGroupKey(gid, acct, k.Epoch, k.State); err != nil {
					return err
				}
				moved++
			}
		}
		if moved == 0 {
			t.Fatalf("bob holds no key of alice's device: %d keys", len(ks))
		}
		return tx.DeleteGroupKeys(gid, keyOwner(acct, deviceTag(dev)))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.m.GroupSend(ctx, g.ID, "two"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob reads two (names the device; the account's key)", func() bool { return groupHas(t, bob, g.ID, "two") })

	// An envelope that names no device, as a node before this sends it.
	var raw []byte
	err = alice.st.Update(ctx, func(tx *store.Tx) error {
		ag, err := resolveGroup(tx, g.ID)
		if err != nil {
			return err
		}
		s, err := senderkey.UnmarshalSender(ag.Sender)
		if err != nil {
			return err
		}
		id := make([]byte, wire.MessageIDSize)
		rand.Read(id)
		pt := wire.Pad(wire.Marshal(&wirepb.GroupText{Version: wire.Version, MessageId: id, Body: "three", SentAtUnixMs: alice.m.now().UnixMilli()}))
		msg, err := s.Encrypt(pt)
		if err != nil {
			return err
		}
		ag.Sender = s.Marshal()
		raw = wire.Marshal(&wirepb.GroupEnvelope{Version: wire.Version, Sender: acct, Message: msg})
		return tx.UpdateGroup(ag)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.m.checkGroupEnvelope(ctx, gid, raw); err != nil {
		t.Errorf("bob's verdict on an envelope naming no device: %v", err)
	}
	bob.m.receiveGroupMessages(ctx, gid, "", "", [][]byte{raw}, false)
	if !groupHas(t, bob, g.ID, "three") {
		t.Error("bob does not read an envelope that names no device")
	}
}

// TestGroupKeyOfUnlistedDeviceRefused: a sender key a contact hands us for
// a device its card does not list is not kept (a contact cannot make us
// keep keys for made-up devices, nor a revoked device's).
func TestGroupKeyOfUnlistedDeviceRefused(t *testing.T) {
	ctx := context.Background()
	alice, bob := newNode(t, "alice"), newNode(t, "bob")
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	g, err := alice.m.CreateGroup(ctx, "G")
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
	gid := groupIDBytes(t, bob, g.ID)
	s, err := senderkey.New(rand.Reader, 0)
	if err != nil {
		t.Fatal(err)
	}
	madeUp := []byte("made-up!")
	for _, dev := range [][]byte{madeUp, deviceTag(alice.n.PeerID())} {
		err = bob.st.Update(ctx, func(tx *store.Tx) error {
			c, err := tx.ContactByAccount(alice.m.AccountID())
			if err != nil {
				return err
			}
			rx := newBatch()
			gc := &wirepb.GroupControl{GroupId: gid, SenderKey: s.Distribution().Marshal(), Device: dev}
			if err := bob.m.receiveGroupControl(tx, rx, c, gc); err != nil {
				return err
			}
			return rx.flush(tx)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err = bob.st.View(ctx, func(tx *store.Tx) error {
		if _, err := tx.GroupKey(gid, keyOwner(alice.m.AccountID(), madeUp), 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("bob kept the key of a device alice's card does not list (%v)", err)
		}
		if _, err := tx.GroupKey(gid, keyOwner(alice.m.AccountID(), deviceTag(alice.n.PeerID())), 0); err != nil {
			t.Errorf("bob did not keep the key of alice's listed device: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
