package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIChannelPostFile: the owner of a private channel posts a file
// with `channel post --file`; two subscribers' daemons fetch it, `channel
// posts` names it and `save` writes it out by the post's hash. A file
// over the owner's --max-channel-file-size is refused.
func TestCLIChannelPostFile(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newProfile(t, "alice"), newProfile(t, "bob"), newProfile(t, "carol")
	for _, p := range []*profile{alice, bob, carol} {
		p.must("init", "--name", p.name, "--no-passphrase")
	}
	alice.start("--max-channel-file-size", "2MiB")
	bob.start()
	carol.start()
	var ch struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(alice.must("channel", "create", "Photos", "from", "home", "--private", "--json")), &ch)
	link := strings.TrimSpace(alice.must("channel", "invite", ch.ID))
	bob.must("channel", "follow", link)
	carol.must("channel", "follow", link)
	eventuallyQuick(t, "both on the channel's topic", func() (bool, bool) { return alice.quickChannelPeers(2) }, func() bool {
		var cs []struct {
			Peers int `json:"peers"`
		}
		json.Unmarshal([]byte(alice.must("channel", "list", "--json")), &cs)
		return len(cs) == 1 && cs[0].Peers == 2
	})

	if _, errOut, code := alice.run("channel", "post", ch.ID); code != 2 || !strings.Contains(errOut, "channel post needs a text, or --file PATH") {
		t.Fatalf("channel post without a text: exit %d, %q", code, errOut)
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "film.bin")
	os.WriteFile(big, make([]byte, 3<<20), 0o600)
	alice.fails("file is too large", "channel", "post", ch.ID, "--file", big)
	bob.fails("only the channel's owner", "channel", "post", ch.ID, "--file", big)

	content := make([]byte, 1<<20+12345)
	rand.Read(content)
	path := filepath.Join(dir, "album.bin")
	os.WriteFile(path, content, 0o600)
	var post struct {
		Seq  uint64 `json:"seq"`
		Text string `json:"text"`
		Hash string `json:"hash"`
		File *struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"file"`
	}
	json.Unmarshal([]byte(alice.must("channel", "post", ch.ID, "--file", path, "the", "album", "--json")), &post)
	if post.Seq != 0 || post.Text != "the album" || len(post.Hash) != 64 || post.File == nil || post.File.Name != "album.bin" || post.File.Size != int64(len(content)) {
		t.Fatalf("channel post --file --json: %+v", post)
	}
	for _, p := range []*profile{bob, carol} {
		p.eventuallyTransfer(t, p.name+" has the album", post.Hash, func(tr transfer) bool { return tr.State == "complete" })
		out := filepath.Join(t.TempDir(), p.name+".bin")
		p.must("save", post.Hash, out)
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s's copy differs (%v)", p.name, err)
		}
		if ps := p.must("channel", "posts", ch.ID); !strings.Contains(ps, "[file: album.bin, "+post.Hash[:12]+"] the album") {
			t.Fatalf("%s's channel posts: %q", p.name, ps)
		}
	}
}
