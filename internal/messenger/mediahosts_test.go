package messenger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/media"
	"github.com/samizdat-im/samizdat/internal/p2p"
	"github.com/samizdat-im/samizdat/internal/store"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// startBlobHost runs a mailbox host with blob quotas q, every byte it
// reads and writes going to trace.
func startBlobHost(t testing.TB, q mailbox.Quotas, trace *syncBuffer) (MailboxHost, *store.MailboxStore) {
	t.Helper()
	key := make([]byte, store.KeySize)
	rand.Read(key)
	ms, err := store.OpenMailboxStore(filepath.Join(t.TempDir(), "mailbox.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := p2p.New(context.Background(), p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := mailbox.ServerConfig{Store: ms, SweepInterval: -1, BlobQuotas: q}
	if trace != nil {
		cfg.Trace = trace
	}
	srv := mailbox.NewServer(cfg)
	srv.Register(n)
	t.Cleanup(func() {
		srv.Close()
		n.Close()
		ms.Close()
	})
	return MailboxHost{PeerID: n.PeerID(), Addrs: transportAddrs(n.Addrs())}, ms
}

// mediaTune is the config of a node that carries files (chunks in dir)
// and has host as its mailbox host (none: zero MailboxHost).
func mediaTune(t testing.TB, dir string, host MailboxHost) func(*Config) {
	return func(c *Config) {
		svc, err := media.New(media.Config{Dir: dir, Store: c.Store, Transport: c.Transport.(media.Transport),
			RetryInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Media = svc
		c.FetchInterval = 200 * time.Millisecond
		if host.PeerID != "" {
			c.MailboxHosts = []MailboxHost{host}
		}
	}
}

// offlinePair makes alice and bob contacts, bob with host as his mailbox
// host, and stops bob.
func offlinePair(t *testing.T, host MailboxHost) (alice, bob *tnode) {
	adir, bdir := t.TempDir(), t.TempDir()
	alice = newNodeTuned(t, "alice", mediaTune(t, adir, MailboxHost{}))
	bob = newNodeTuned(t, "bob", mediaTune(t, bdir, MailboxHost{}))
	bob.pinAddr()
	bob.restartWith(mediaTune(t, bdir, host)) // bob's card names his host
	addContact(t, alice, bob)
	addContact(t, bob, alice)
	alice.pinAddr()
	bob.stop()
	return alice, bob
}

// TestFileThroughMailboxHost: bob is offline; alice sends him a file; its
// chunks go to bob's mailbox host; alice goes offline; bob comes online
// and completes the file from his host alone, which then deletes the
// blobs. The host never sees the content, the chunk addresses, the file
// key, the file name or alice's peer id: only equal-sized blobs.
func TestFileThroughMailboxHost(t *testing.T) {
	// Two blobs per stream: the file travels over several streams each
	// way, as through a circuit relay's limits. Restored after the nodes
	// stop (cleanups run last first).
	was := blobsPerStream
	t.Cleanup(func() { blobsPerStream = was })
	blobsPerStream = 2
	trace := &syncBuffer{}
	host, ms := startBlobHost(t, mailbox.Quotas{}, trace)
	alice, bob := offlinePair(t, host)
	ctx := context.Background()
	path, data := writeRandom(t, 1<<20+12345) // 5 data chunks, the last one short
	msg, err := alice.m.SendFile(ctx, "bob", path, "for when you are back")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the file deposited at bob's host", func() bool {
		return transferOf(t, alice, msg.ID).HostState == media.HostDeposited
	})
	man, err := alice.m.Media().Manifest(ctx, msg.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := ms.BlobUsage(ctx, nil)
	if err != nil || n != int64(man.Chunks()+len(man.Index)) {
		t.Fatalf("host holds %d blobs (%v), want %d", n, err, man.Chunks()+len(man.Index))
	}
	alicePeer := alice.n.PeerID()
	// What the host's operator reads in its database with its own key.
	dump, err := ms.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dump) < man.Chunks()*media.BlobSize {
		t.Fatalf("the dump holds %d bytes: no blobs in it", len(dump))
	}
	alice.stop() // the sender goes offline

	bob.start()
	eventually(t, 30*time.Second, "bob has the file from his host", func() bool {
		return transferOf(t, bob, msg.ID).State == media.StateComplete
	})
	out := filepath.Join(t.TempDir(), "saved")
	if err := bob.m.SaveFile(ctx, msg.ID, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("bob's file differs from alice's")
	}
	eventually(t, 20*time.Second, "the host deleted the blobs", func() bool {
		_, n, err := ms.BlobUsage(ctx, nil)
		return err == nil && n == 0
	})

	// What the host learned: everything it read and wrote, after
	// transport decryption, and its database as its key opens it.
	seen := append(trace.Bytes(), dump...)
	if !bytes.Contains(seen, []byte("#stream peer=")) || len(seen) < man.Chunks()*media.BlobSize {
		t.Fatalf("the trace holds %d bytes: the deposit was not traced", len(seen))
	}
	for off := 0; off+64 <= len(data); off += 100_003 {
		if bytes.Contains(seen, data[off:off+64]) {
			t.Fatalf("plaintext at offset %d seen by the host", off)
		}
	}
	// Several streams each way (two blobs per stream), each from its own
	// throwaway identity.
	peers := map[string]bool{}
	streams := 0
	for _, line := range strings.Split(string(seen), "\n") {
		if p, ok := strings.CutPrefix(line, "#stream peer="); ok && strings.HasSuffix(p, " blobs") {
			streams++
			peers[p] = true
		}
	}
	if streams < 6 || len(peers) != streams {
		t.Fatalf("%d blob streams from %d identities, want at least 6, each its own", streams, len(peers))
	}
	if bytes.Contains(seen, man.Key[:]) || bytes.Contains(seen, []byte("photo album")) || bytes.Contains(seen, []byte(alicePeer)) {
		t.Fatal("the host saw the file key, its name or the sender's peer id")
	}
	hashes, err := media.LoadIndex(bob.m.Media().Chunks(), man)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range append(hashes, man.Index...) {
		if bytes.Contains(seen, h[:]) {
			t.Fatalf("chunk address %d seen by the host", i)
		}
		c, err := bob.m.Media().Chunks().Get(h)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(seen, c[:64]) {
			t.Fatalf("chunk %d's ciphertext seen by the host (linkable to the swarm)", i)
		}
	}
}

// TestFileOverHostQuota: bob's host has room for fewer blobs than alice's
// file needs: it refuses before anything is sent, alice's transfer says
// the file waits with her (over quota), and bob gets it from her once
// both are online.
func TestFileOverHostQuota(t *testing.T) {
	host, ms := startBlobHost(t, mailbox.Quotas{PerMailbox: 3 * mailbox.BlobSize}, nil)
	alice, bob := offlinePair(t, host)
	ctx := context.Background()
	path, data := writeRandom(t, 2<<20)
	msg, err := alice.m.SendFile(ctx, "bob", path, "")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the transfer says over quota", func() bool {
		return transferOf(t, alice, msg.ID).HostState == media.HostOverQuota
	})
	tr := transferOf(t, alice, msg.ID)
	if !strings.Contains(tr.HostError, "over quota") || !strings.Contains(tr.HostError, "waits here") {
		t.Errorf("the transfer's reason: %q", tr.HostError)
	}
	if _, n, _ := ms.BlobUsage(ctx, nil); n != 0 {
		t.Errorf("the host holds %d blobs of a file it refused", n)
	}
	bob.start()
	eventually(t, 30*time.Second, "bob has the file from alice", func() bool {
		return transferOf(t, bob, msg.ID).State == media.StateComplete
	})
	out := filepath.Join(t.TempDir(), "saved")
	if err := bob.m.SaveFile(ctx, msg.ID, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("bob's file differs")
	}
}

// TestBlobKeys: our hosts are asked for blobs under the current mailbox
// id and those superseded less than the blob TTL ago, the current first.
func TestBlobKeys(t *testing.T) {
	n := newNode(t, "carol")
	now := n.m.now()
	key := func() ed25519.PrivateKey {
		k, err := mailbox.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	old, recent, cur := key(), key(), key()
	n.m.mbMu.Lock()
	saved := n.m.mbKeys
	n.m.mbKeys = []mailboxKey{
		{key: old, since: now.Add(-30 * 24 * time.Hour), until: now.Add(-mailbox.DefaultBlobTTL - time.Hour)},
		{key: recent, since: now.Add(-9 * 24 * time.Hour), until: now.Add(-24 * time.Hour)},
		{key: cur, since: now.Add(-24 * time.Hour)},
	}
	n.m.mbMu.Unlock()
	got := n.m.blobKeys()
	n.m.mbMu.Lock()
	n.m.mbKeys = saved
	n.m.mbMu.Unlock()
	if len(got) != 2 || !got[0].Equal(cur) || !got[1].Equal(recent) {
		t.Fatalf("blobKeys: %d keys", len(got))
	}
}
