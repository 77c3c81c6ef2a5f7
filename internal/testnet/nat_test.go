package testnet

import (
	"strings"
	"testing"
	"time"
)

// TestLabNATRelay: alice and bob each sit behind their own NAT (a router
// namespace masquerading their LAN onto a "public" segment, forwarding
// nothing inbound); neither can dial the other. Both keep a slot on a
// samizdat relay on the public segment (--relay, --behind-nat) and list
// the relayed address in their cards: messages go both ways through it.
// When the relay dies, a new message stays queued (nothing else reaches
// alice), not lost.
//
// Hole punching (DCUtR) is on in every node but cannot be shown here:
// libp2p punches only from addresses it deems public, and the lab's
// 198.18.0.0/15 is on go-multiaddr's unroutable list (it also wants 4
// peers to confirm an observed address).
func TestLabNATRelay(t *testing.T) {
	RequireRoot(t, "ip", "nft")
	t.Parallel()
	pub := NewBridge(t, "pub")
	relayNS := NewNetns(t, "rly")
	pub.Attach(t, relayNS, "eth0", "198.19.7.10/24")

	// A NATed LAN: host ── router (masquerade) ── public bridge.
	natted := func(label, lan, wan string) *Netns {
		host, router := NewNetns(t, label), NewNetns(t, label+"nat")
		Link(t, host, "eth0", lan+".10/24", router, "lan0", lan+".1/24")
		pub.Attach(t, router, "wan0", wan+"/24")
		router.EnableForwarding()
		host.Route("default", lan+".1")
		nftApply(t, router, `table ip nat {
	chain natpost { type nat hook postrouting priority srcnat; policy accept; oifname "wan0" masquerade; }
}
table ip filter {
	chain lanfwd { type filter hook forward priority 0; policy drop;
		iifname "lan0" oifname "wan0" accept
		ct state established,related accept
	}
}`)
		return host
	}
	aliceNS := natted("al", "198.18.71", "198.19.7.21")
	bobNS := natted("bo", "198.18.72", "198.19.7.22")

	// The relay.
	bin := SamizdatBinary(t)
	relayDir := t.TempDir() + "/relay"
	startRelay := func() *Proc {
		return relayNS.Start([]string{"SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE="}, bin,
			"--profile", relayDir, "relay", "--listen", "/ip4/198.19.7.10/tcp/4001", "--dht=false")
	}
	relay := startRelay()
	var relayAddr string
	deadline := time.Now().Add(30 * time.Second)
	for relayAddr == "" {
		for _, line := range strings.Split(relay.Stdout.String(), "\n") {
			if a, ok := strings.CutPrefix(line, "listening: "); ok && strings.Contains(a, "/tcp/") {
				relayAddr = a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay did not come up: %s", relay.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	alice, bob := NewDaemon(t, aliceNS, "alice"), NewDaemon(t, bobNS, "bob")
	args := func(lan string) []string {
		return []string{"--listen", "/ip4/" + lan + ".10/tcp/4001", "--listen", "/ip4/" + lan + ".10/udp/4001/quic-v1",
			"--relay", relayAddr, "--behind-nat", "--dht=false", "--retry-max", "2s"}
	}
	alice.Up(args("198.18.71")...)
	bob.Up(args("198.18.72")...)
	// Alice's card must carry her relayed address before bob adds her.
	deadline = time.Now().Add(30 * time.Second)
	for !hasCircuit(alice) {
		if time.Now().After(deadline) {
			t.Fatalf("alice never listed a relayed address\n%s", alice.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	bob.Must("contacts", "add", alice.Invite())

	first := bob.Send("alice", "through the relay, then punched")
	bob.WaitState("alice", first, "delivered", 60*time.Second)
	reply := alice.Send("bob", "got it")
	alice.WaitState("bob", reply, "delivered", 60*time.Second)

	if err := relay.Stop(10 * time.Second); err != nil {
		t.Logf("relay exit: %v", err)
	}
	deferred := strings.Count(bob.Log(), "msg=deliveryDeferred")
	second := bob.Send("alice", "the relay is gone")
	bob.WaitLogCount("msg=deliveryDeferred", deferred+2, 30*time.Second) // two attempts failed
	if st := bob.State("alice", second); st != "queued" {
		t.Fatalf("with the relay gone the message is %q, want queued (no other path to alice)", st)
	}
	// The relay comes back (same key, same port): both book their slots
	// again and the queued message goes through.
	startRelay()
	bob.WaitState("alice", second, "delivered", 90*time.Second)
}

// nftApply loads an nft ruleset into a namespace.
func nftApply(t *testing.T, ns *Netns, rules string) {
	t.Helper()
	cmd := ns.Command(t.Context(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: nft: %v: %s", ns.Name, err, out)
	}
}

// hasCircuit reports whether the daemon lists a relayed address (its card
// carries the addresses its status shows).
func hasCircuit(d *Daemon) bool {
	for _, a := range d.Status().Addrs {
		if strings.Contains(a, "/p2p-circuit") {
			return true
		}
	}
	return false
}
