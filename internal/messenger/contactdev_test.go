package messenger

import (
	"context"
	"crypto/ed25519"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/identity"
	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/mesh"
)

// Receive and ack paths for a contact's devices other than its primary
// one, when what they send reaches us with no transport naming them
// (mailbox, mesh).

// TestRevokedDeviceInitiationRepeatThroughMailbox: alice's phone starts a
// session with bob through his mailbox; bob's ack cannot reach it (it is
// off, with no mailbox of its own), so its next message still carries the
// same initiation. Alice revokes the phone and bob holds her new card;
// the phone, not knowing, writes again through bob's mailbox. Bob must
// refuse that message as the revoked device's: a repeat of an initiation
// found on the revoked device's session once passed with no device check
// at all (no transport names the device), and bob showed it.
func TestRevokedDeviceInitiationRepeatThroughMailbox(t *testing.T) {
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNodeTuned(t, "bob", withHost)
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	phone := linkDevice(t, alice, "phone") // no mailbox host: nothing reaches it while it is off
	phone.pinAddr()
	phonePeer := phone.n.PeerID()
	eventually(t, 30*time.Second, "bob holds alice's card with the phone", func() bool {
		card, _ := heldCard(t, bob, alice.m.AccountID())
		return card != nil && card.HasDevice(phonePeer)
	})
	count := mailboxCount(t, ms, ownMailboxID(t, bob))

	bob.stop()
	p0 := send(t, phone, "bob", "first from the phone")
	waitState(t, phone, "bob", p0.ID, StateSent) // deposited at bob's host
	phone.stop()
	bob.start()
	eventually(t, 30*time.Second, "bob has the phone's first message", func() bool { return hasMessage(t, bob, "alice", "first from the phone", false) })

	revokePeer(t, alice, phonePeer)
	eventually(t, 30*time.Second, "bob holds alice's card without the phone", func() bool {
		card, _ := heldCard(t, bob, alice.m.AccountID())
		return card != nil && !card.HasDevice(phonePeer)
	})
	alice.stop() // the phone must not learn that it is revoked
	bob.stop()
	phone.start()
	p1 := send(t, phone, "bob", "from the revoked phone")
	waitState(t, phone, "bob", p1.ID, StateSent) // deposited at bob's host
	phone.stop()

	bob.start()
	eventually(t, 30*time.Second, "bob's mailbox taken", func() bool { return count() == 0 })
	if hasMessage(t, bob, "alice", "from the revoked phone", false) {
		t.Fatal("bob shows a message the revoked phone sent after he held the card that revokes it")
	}
}

// TestMailboxFromDeviceWithoutPrimarySession: bob added alice from the
// invite her phone showed, so her phone is the device he holds as hers
// first (primary); alice writes to him from her laptop, and bob never
// wrote to her. He holds a session with her laptop only. The laptop's
// next message, left in bob's mailbox while he was away (the laptop then
// off), must be read on that session: it was refused as junk (the trial
// of a contact's other devices needed a session with the primary one as
// well) and the host deleted it.
func TestMailboxFromDeviceWithoutPrimarySession(t *testing.T) {
	h, ms, _ := startTracedHost(t, io.Discard)
	withHost := func(c *Config) { c.MailboxHosts = []MailboxHost{h}; c.FetchInterval = 200 * time.Millisecond }
	alice, bob := newNodeTuned(t, "alice", withHost), newNodeTuned(t, "bob", withHost)
	bob.pinAddr()
	phone := linkDeviceTuned(t, alice, "phone", withHost)
	ctx := context.Background()
	link, err := phone.m.Invite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.m.AddContact(ctx, link, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, primary := heldCard(t, bob, alice.m.AccountID()); primary != phone.n.PeerID() {
		t.Fatalf("bob holds %s as alice's first device, want her phone", shortPeer(primary))
	}
	addContact(t, alice, bob)
	m0 := send(t, alice, "bob", "hello from the laptop")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	count := mailboxCount(t, ms, ownMailboxID(t, bob))

	bob.stop()
	m1 := send(t, alice, "bob", "from the laptop, while bob is away")
	waitState(t, alice, "bob", m1.ID, StateSent) // deposited at bob's host
	// Only the mailbox has it now.
	alice.stop()
	bob.start()
	eventually(t, 30*time.Second, "bob's mailbox taken", func() bool { return count() == 0 })
	if !hasMessage(t, bob, "alice", "from the laptop, while bob is away", false) {
		t.Fatal("the laptop's message was taken from bob's mailbox and not stored")
	}
	alice.start()
	waitState(t, alice, "bob", m1.ID, StateDelivered)
}

// TestFileFromDeviceThroughMailbox: alice's phone sends bob a file while
// he is away; the message waits in his mailbox, the file stays on the
// phone (the host holds no files: over its quota), and alice's laptop is
// off. Bob must fetch the file from the phone, the device that sent it:
// a message from a mailbox named no device, so its file was fetched
// from alice's laptop only, which never had it.
func TestFileFromDeviceThroughMailbox(t *testing.T) {
	h, _ := startBlobHost(t, mailbox.Quotas{PerMailbox: 1, Total: 1}, nil)
	alice := newNodeTuned(t, "alice", mediaTune(t, t.TempDir(), h))
	bob := newNodeTuned(t, "bob", mediaTune(t, t.TempDir(), h))
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	phone := linkDeviceTuned(t, alice, "phone", mediaTune(t, t.TempDir(), h))
	phone.pinAddr()
	p0 := send(t, phone, "bob", "hello from the phone")
	waitState(t, phone, "bob", p0.ID, StateDelivered)

	alice.stop() // the laptop never gets the file
	bob.stop()
	path, _ := writeRandom(t, 300<<10)
	f, err := phone.m.SendFile(context.Background(), "bob", path, "from the phone")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, phone, "bob", f.ID, StateSent) // deposited at bob's host
	// The message reaches bob through his mailbox only.
	phone.stop()
	bob.start()
	eventually(t, 30*time.Second, "bob has the phone's message", func() bool { return hasMessage(t, bob, "alice", "from the phone", false) })
	phone.start()
	eventually(t, 30*time.Second, "bob has the phone's file", func() bool {
		return transferOf(t, bob, f.ID).State == media.StateComplete
	})
}

// meshRecorder is a mesh that carries nothing: it counts what a node
// offers under each mailbox id.
type meshRecorder struct {
	mu     sync.Mutex
	offers map[mailbox.ID]int
}

var _ Mesh = (*meshRecorder)(nil)

func (r *meshRecorder) Offer(id mailbox.ID, _ []byte, _ []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.offers == nil {
		r.offers = map[mailbox.ID]int{}
	}
	r.offers[id]++
	return nil
}

func (r *meshRecorder) Own(ed25519.PrivateKey, mesh.DeliverFunc) {}

func (r *meshRecorder) Stats() mesh.Stats { return mesh.Stats{} }

func (r *meshRecorder) offered(id []byte) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k mailbox.ID
	copy(k[:], id)
	return r.offers[k]
}

// ownMeshID is the mesh mailbox id n's own card names.
func ownMeshID(t testing.TB, n *tnode) []byte {
	t.Helper()
	b, err := n.m.card(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := identity.ParseSignedCard(b)
	if err != nil || len(c.MeshMailbox) != mailbox.IDSize {
		t.Fatalf("%s's card names no mesh mailbox: %v", n.name, err)
	}
	return c.MeshMailbox
}

// TestMeshToPrimaryWhileHoldingAnotherDevicesCard: bob was away while
// alice linked her phone, and the phone's card (a newer device list, made
// after the laptop's) reached him before the laptop's, so the card he
// holds for alice is the phone's: its mesh mailbox is the phone's. With no
// internet, what bob queues for alice's primary device, the laptop (his
// messages, his acks of hers), must be offered to the mesh under the
// laptop's own mailbox id, as mailbox deposits go to the laptop's own
// hosts: it was offered under the phone's id, where the laptop never
// looks and the phone cannot read it.
func TestMeshToPrimaryWhileHoldingAnotherDevicesCard(t *testing.T) {
	bobMesh := &meshRecorder{}
	alice := newNodeTuned(t, "alice", func(c *Config) { c.Mesh = &meshRecorder{} })
	bob := newNodeTuned(t, "bob", func(c *Config) { c.Mesh = bobMesh })
	alice.pinAddr()
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m0.ID, StateDelivered)

	holdPhonesCard(t, alice, bob, func(c *Config) { c.Mesh = &meshRecorder{} })
	laptopMesh := ownMeshID(t, alice)

	alice.stop()
	send(t, bob, "alice", "through the mesh")
	eventually(t, 30*time.Second, "bob's message offered to the mesh for the laptop", func() bool { return bobMesh.offered(laptopMesh) > 0 })
}

// holdPhonesCard brings bob to hold the card alice's new phone made as
// alice's card (a newer device list than the laptop's card he held; the
// laptop's own card update, made before the phone's, comes after it and
// is kept as the laptop's own card only), her laptop staying his primary
// device of hers. Bob has no mailbox host: the laptop's update waits in
// its outbox while bob is away and the laptop is off. It returns the
// phone.
func holdPhonesCard(t *testing.T, alice, bob *tnode, tune func(*Config)) *tnode {
	t.Helper()
	bob.stop()
	phone := linkDeviceTuned(t, alice, "phone", tune)
	phonePeer, laptopPeer, aliceAcct := phone.n.PeerID(), alice.n.PeerID(), alice.m.AccountID()
	alice.stop()
	bob.start()
	eventually(t, 30*time.Second, "bob holds a card of alice with the phone", func() bool {
		card, _ := heldCard(t, bob, aliceAcct)
		return card != nil && card.HasDevice(phonePeer)
	})
	alice.start()
	eventually(t, 30*time.Second, "the laptop's card update delivered", func() bool {
		for _, it := range outboxOf(t, alice, bob.m.AccountID()) {
			if strings.HasPrefix(it.MessageID, cardItemPrefix) {
				return false
			}
		}
		return true
	})
	if _, primary := heldCard(t, bob, aliceAcct); primary != laptopPeer {
		t.Fatalf("bob holds %s as alice's primary device, want her laptop", shortPeer(primary))
	}
	return phone
}

// TestFileForPrimaryWhileHoldingAnotherDevicesCard: bob holds the card
// alice's phone made as hers (holdPhonesCard) and sends her a file while
// both her devices are off. The file must be deposited at the laptop's own hosts
// under its mailbox id, as its message is: it went under the phone's, so
// the laptop, back while bob is off, got the message and never the file.
func TestFileForPrimaryWhileHoldingAnotherDevicesCard(t *testing.T) {
	h, _ := startBlobHost(t, mailbox.Quotas{}, nil)
	alice := newNodeTuned(t, "alice", mediaTune(t, t.TempDir(), h))
	bob := newNodeTuned(t, "bob", mediaTune(t, t.TempDir(), MailboxHost{}))
	alice.pinAddr()
	bob.pinAddr()
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	m0 := send(t, alice, "bob", "hello")
	waitState(t, alice, "bob", m0.ID, StateDelivered)
	phone := holdPhonesCard(t, alice, bob, mediaTune(t, t.TempDir(), h))

	// Both of alice's devices off: no device acks the message, whose file
	// then goes to the hosts.
	alice.stop()
	phone.stop()
	path, _ := writeRandom(t, 300<<10)
	f, err := bob.m.SendFile(context.Background(), "alice", path, "for the laptop")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, bob, "alice", f.ID, StateSent) // its message deposited for the laptop
	eventually(t, 30*time.Second, "the file deposited", func() bool { return transferOf(t, bob, f.ID).HostState == media.HostDeposited })
	bob.stop()
	alice.start()
	eventually(t, 30*time.Second, "the laptop has bob's message", func() bool { return hasMessage(t, alice, "bob", "for the laptop", false) })
	eventually(t, 30*time.Second, "the laptop has bob's file", func() bool { return transferOf(t, alice, f.ID).State == media.StateComplete })
}
