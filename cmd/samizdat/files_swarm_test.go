package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samizdat-im/samizdat/internal/apiclient"
)

// chunkFiles lists the chunk files in a profile's media directory, data
// chunks (full size) apart from the small index chunks.
func chunkFiles(t *testing.T, p *profile) (data, index []string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(p.dir, "media"), func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "packs" {
			return filepath.SkipDir // packedChunks reads these
		}
		if err != nil || d.IsDir() || strings.Contains(d.Name(), ".tmp") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(p.dir, "media"), path)
		if fi.Size() == 256<<10+16 {
			data = append(data, rel)
		} else {
			index = append(index, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return data, index
}

// packedChunks lists the data chunks p holds in packs (the files it
// fetches: one pack each, and a byte per chunk, 1 once it is held), by
// the path each would have as a chunk file.
func packedChunks(t *testing.T, p *profile) []string {
	t.Helper()
	const sealed = 256<<10 + 16
	dir := filepath.Join(p.dir, "media", "packs")
	oks, _ := filepath.Glob(filepath.Join(dir, "*.ok"))
	var out []string
	for _, ok := range oks {
		marks, err := os.ReadFile(ok)
		if err != nil {
			t.Fatal(err)
		}
		pack, err := os.ReadFile(strings.TrimSuffix(ok, ".ok"))
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range marks {
			if m != 1 {
				continue
			}
			if len(pack) < (i+1)*sealed {
				t.Fatalf("pack %s: chunk %d marked held, not there", ok, i)
			}
			h := sha256.Sum256(pack[i*sealed : (i+1)*sealed])
			x := hex.EncodeToString(h[:])
			out = append(out, filepath.Join(x[:2], x))
		}
	}
	return out
}

func moveChunk(t *testing.T, from, to, rel string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(filepath.Join(to, rel)), 0o700)
	if err := os.Rename(filepath.Join(from, rel), filepath.Join(to, rel)); err != nil {
		t.Fatal(err)
	}
}

func (p *profile) transfer(id string) transfer {
	for _, tr := range p.files() {
		if tr.MessageID == id {
			return tr
		}
	}
	return transfer{}
}

// TestCLIFileResumeAfterKill: the receiving daemon holds half of a file
// when it is SIGKILLed; restarted, it fetches the other half only. To
// prove it, the sender then holds only that other half: asking it for a
// chunk the receiver had already checked would fail the transfer.
func TestCLIFileResumeAfterKill(t *testing.T) {
	t.Parallel()
	alice, bob := newProfile(t, "alice"), newProfile(t, "bob")
	alice.must("init", "--name", "alice", "--no-passphrase")
	bob.must("init", "--name", "bob", "--no-passphrase")
	alice.start()
	bob.start()
	alice.must("contacts", "add", strings.TrimSpace(bob.must("invite")), "--name", "bob")
	bob.stop() // offline while alice sends

	const chunks = 16
	content := make([]byte, chunks*256<<10)
	rand.Read(content)
	path := filepath.Join(t.TempDir(), "archive.bin")
	os.WriteFile(path, content, 0o600)
	id := strings.TrimSpace(alice.must("send", "bob", "--file", path))

	// Alice keeps half of the data chunks only (a sender gone half away),
	// so bob stops at about half.
	amedia, hidden := filepath.Join(alice.dir, "media"), t.TempDir()
	data, _ := chunkFiles(t, alice)
	if len(data) != chunks {
		t.Fatalf("alice holds %d data chunks", len(data))
	}
	for _, rel := range data[:chunks/2] {
		moveChunk(t, amedia, hidden, rel)
	}
	bob.start()
	bob.eventuallyTransfer(t, "bob fetches what alice has, and stops", id, func(tr transfer) bool {
		return tr.State == "failed" && tr.Done > 0
	})
	before := bob.transfer(id).Done
	bob.kill()
	held := packedChunks(t, bob)
	if files, _ := chunkFiles(t, bob); len(files) != 0 {
		t.Fatalf("bob holds %d data chunks as files, not in the pack", len(files))
	}
	if len(held) != before || before >= chunks {
		t.Fatalf("bob held %d chunks on disk, %d by files, of %d", len(held), before, chunks)
	}
	t.Logf("bob was SIGKILLed holding %d of %d chunks", before, chunks)

	// Now alice holds exactly the chunks bob lacks (and the index).
	for _, rel := range data[:chunks/2] {
		moveChunk(t, hidden, amedia, rel)
	}
	for _, rel := range held {
		moveChunk(t, amedia, hidden, rel)
	}
	bob.start()
	bob.eventuallyTransfer(t, "bob completes the file after the restart", id, func(tr transfer) bool { return tr.State == "complete" })
	out := filepath.Join(t.TempDir(), "saved.bin")
	bob.must("save", id, out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("bob's copy differs (%v)", err)
	}
}

// TestCLIGroupSendFile: a member that is not the admin sends a file to a
// group of three with `group send --file`; the others get it.
func TestCLIGroupSendFile(t *testing.T) {
	t.Parallel()
	ps := map[string]*profile{}
	for _, n := range []string{"alice", "bob", "carol"} {
		ps[n] = newProfile(t, n)
		ps[n].must("init", "--name", n, "--no-passphrase")
		ps[n].start()
	}
	alice, bob, carol := ps["alice"], ps["bob"], ps["carol"]
	for _, n := range []string{"bob", "carol"} {
		alice.must("contacts", "add", strings.TrimSpace(ps[n].must("invite")), "--name", n)
	}
	var g struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(alice.must("group", "create", "Family", "--json")), &g)
	alice.must("group", "invite", g.ID, "bob")
	alice.must("group", "invite", g.ID, "carol")
	for _, p := range []*profile{bob, carol} {
		eventuallyQuick(t, p.name+" joins", func() (bool, bool) { return p.quickGroupMembers(3) }, func() bool {
			var gs []struct {
				Members []any `json:"members"`
			}
			json.Unmarshal([]byte(p.must("group", "list", "--json")), &gs)
			return len(gs) == 1 && len(gs[0].Members) == 3
		})
	}
	// Sender keys first: a text from bob, read by both.
	bob.must("group", "send", g.ID, "photos", "coming")
	for _, p := range []*profile{alice, carol} {
		eventuallyQuick(t, p.name+" reads bob", func() (bool, bool) { return p.quickGroupText(g.ID, "photos coming") }, func() bool {
			return strings.Contains(p.must("group", "messages", g.ID), "photos coming")
		})
	}
	if _, errOut, code := bob.run("group", "send", g.ID); code != 2 || !strings.Contains(errOut, "group send needs a text, or --file PATH") {
		t.Fatalf("group send without a text: exit %d, %q", code, errOut)
	}
	bob.fails("cannot read", "group", "send", g.ID, "--file", filepath.Join(t.TempDir(), "missing.jpg"))
	content := make([]byte, 3<<20)
	rand.Read(content)
	path := filepath.Join(t.TempDir(), "album.bin")
	os.WriteFile(path, content, 0o600)
	var gm struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	json.Unmarshal([]byte(bob.must("group", "send", g.ID, "--file", path, "the", "album", "--json")), &gm)
	if len(gm.ID) != 32 || gm.Text != "the album" {
		t.Fatalf("group send --file --json: %+v", gm)
	}
	for _, p := range []*profile{alice, carol} {
		p.eventuallyTransfer(t, p.name+" has the album", gm.ID, func(tr transfer) bool { return tr.State == "complete" })
		out := filepath.Join(t.TempDir(), p.name+".bin")
		p.must("save", gm.ID, out)
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s's copy differs (%v)", p.name, err)
		}
		if !strings.Contains(p.must("group", "messages", g.ID), "[file: album.bin] the album") {
			t.Fatalf("%s's group messages: %s", p.name, p.must("group", "messages", g.ID))
		}
		if !strings.Contains(p.must("files"), "from group "+g.ID[:12]) {
			t.Fatalf("%s's files: %s", p.name, p.must("files"))
		}
	}
	// The sender's files say both members hold it, once it has asked
	// them (soon after sending, then every 30 s).
	deadline := time.Now().Add(90 * time.Second)
	allHave := func() (holds, ok bool) { // the API first (poll_test.go)
		var trs []struct {
			Holders map[string]int `json:"holders"`
		}
		ok = bob.viaAPI(&trs, func(ctx context.Context, c *apiclient.Client) (any, error) { return c.Files(ctx) })
		for _, tr := range trs {
			if tr.Holders["members"] == 2 && tr.Holders["done"] == 2 {
				return true, ok
			}
		}
		return false, ok
	}
	for holds, ok := allHave(); (ok && !holds) || !strings.Contains(bob.must("files"), "[all 2 members have it]"); holds, ok = allHave() {
		if time.Now().After(deadline) {
			t.Fatalf("bob's files: %s", bob.must("files"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	var trs []struct {
		MessageID string         `json:"messageId"`
		Holders   map[string]int `json:"holders"`
	}
	json.Unmarshal([]byte(bob.must("files", "--json")), &trs)
	if len(trs) != 1 || trs[0].Holders["members"] != 2 || trs[0].Holders["done"] != 2 {
		t.Fatalf("bob's files --json: %+v", trs)
	}
}
