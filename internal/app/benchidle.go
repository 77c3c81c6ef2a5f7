package app

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/samizdat-im/samizdat/internal/mailbox"
	"github.com/samizdat-im/samizdat/internal/messenger"
	"github.com/samizdat-im/samizdat/internal/p2p"
)

// Idle cost (issue 18): the CPU time and the bytes an idle node sends in
// an hour, which on a phone are battery and data. The node runs as its
// own process (the real `samizdat up` or `samizdat relay`), so that its
// CPU time is its own (/proc/PID/stat); it runs under a user id of its
// own, so that an iptables rule (OUTPUT, -m owner --uid-owner) counts
// every byte its sockets send, TCP/IP headers included — what the phone's
// radio would send. Everything it talks to (its contacts, mailbox hosts,
// channel owners) runs in this process on loopback.

// IdleOptions configure RunIdleNode and RunIdleRelay.
type IdleOptions struct {
	// Window is how long the idle process is measured (default 5 min),
	// after Settle (default 30 s, at most Window) for its start-up.
	// The node's back-offs reach their idle pace after ~10 min of
	// silence: a Settle of 11 min measures the idle hour's pace, the
	// default the first minutes after a start.
	Window, Settle time.Duration
	// Exe is the samizdat binary to run (default: this executable).
	Exe string
	// The idle node's world (RunIdleNode): contacts, groups of itself and
	// PerGroup contacts, channels followed. Zero: 50, 10, 5, 5.
	Contacts, Groups, PerGroup, Channels int
	Log                                  io.Writer
}

// IdleResult holds an idle run's figures, extrapolated to an hour.
type IdleResult struct {
	What          string // "node (50 contacts, 10 groups, 5 channels)"
	Window        time.Duration
	CPU           time.Duration // in the window
	BytesSent     int64         // in the window (IP packets' bytes)
	CPUPerHour    time.Duration
	BytesPerHour  float64
	PacketsPerMin float64 // packets sent per minute: radio wake-ups
	// ByPeer splits BytesPerHour by whom the node sent to (kinds of peers
	// of its world, from iptables rules per destination port); ByProtocol
	// is its streams' payload per hour by protocol, out and in (above
	// yamux, Noise and TCP; throwaway hosts' streams not included).
	ByPeer     []IdleShare
	ByProtocol []IdleShare
}

// IdleShare is one line of an idle run's breakdown, per hour.
type IdleShare struct {
	Name           string
	Bytes, Packets float64 // sent; Packets is 0 for ByProtocol
	BytesIn        float64 // ByProtocol: received
}

// Figures returns the result as suite figures.
func (r IdleResult) Figures() []ScaleFigure {
	if r.Window == 0 {
		return nil
	}
	return []ScaleFigure{
		targetMax("idle "+r.What+": CPU per hour", r.CPUPerHour.Seconds(), "s", 30, "< 30 CPU-s"),
		targetMax("idle "+r.What+": bytes sent per hour", r.BytesPerHour/1e6, "MB", 1, "< 1 MB"),
		figure("idle "+r.What+": packets sent per minute", r.PacketsPerMin, "/min"),
	}
}

// Breakdown returns the run's ByPeer and ByProtocol as lines of text.
func (r IdleResult) Breakdown() []string {
	var out []string
	for _, s := range r.ByPeer {
		out = append(out, fmt.Sprintf("sent to %-52s %8.3f MB/h %8.0f packets/h", s.Name, s.Bytes/1e6, s.Packets))
	}
	for _, s := range r.ByProtocol {
		out = append(out, fmt.Sprintf("streams of %-49s %8.3f MB/h out %8.3f MB/h in", s.Name, s.Bytes/1e6, s.BytesIn/1e6))
	}
	return out
}

func (o *IdleOptions) defaults() error {
	if o.Window <= 0 {
		o.Window = 5 * time.Minute
	}
	if o.Settle <= 0 {
		o.Settle = min(30*time.Second, o.Window)
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Exe = exe
	}
	if os.Geteuid() != 0 {
		return errors.New("the idle benchmarks count bytes with iptables and run the node under its own user id: run them as root")
	}
	return nil
}

// RunIdleNode measures an idle `samizdat up` with 50 contacts (all
// online, sessions set up), 10 groups of 6 (itself and 5 contacts, a
// message in each) and 5 channels it follows (a post in each), with 3 of
// its contacts as its mailbox hosts (sizes: IdleOptions).
func RunIdleNode(ctx context.Context, dir string, o IdleOptions) (IdleResult, error) {
	if err := o.defaults(); err != nil {
		return IdleResult{}, err
	}
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	contacts, groups, perGroup, channels := pick(o.Contacts, 50), pick(o.Groups, 10), pick(o.PerGroup, 5), pick(o.Channels, 5)
	hosts := min(3, contacts)
	r := IdleResult{What: fmt.Sprintf("node (%d contacts, %d groups, %d channels)", contacts, groups, channels)}
	kind := make([]string, contacts) // what each contact is to the idle node, for ByPeer
	benchLogf(o.Log, "starting %d contacts", contacts)
	var world []*Node
	defer func() {
		for _, n := range world {
			n.Close()
		}
	}()
	var hostAddrs []messenger.MailboxHost
	for i := range contacts {
		d := filepath.Join(dir, fmt.Sprintf("c%02d", i))
		if _, err := Init(ctx, d, fmt.Sprintf("contact%02d", i), KeySource{NoPassphrase: true}); err != nil {
			return r, err
		}
		opts := Options{Dir: d, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true, EnableDHT: true}
		if i < hosts {
			opts.ServeMailbox = &MailboxOptions{}
		}
		n, err := Start(ctx, opts)
		if err != nil {
			return r, err
		}
		world = append(world, n)
		if i < hosts {
			hs, err := ParseMailboxHosts([]string{n.P2P.Addrs()[0]})
			if err != nil {
				return r, err
			}
			hostAddrs = append(hostAddrs, hs...)
		}
	}
	idleDir := filepath.Join(dir, "idle")
	if _, err := Init(ctx, idleDir, "idle", KeySource{NoPassphrase: true}); err != nil {
		return r, err
	}
	me, err := Start(ctx, Options{Dir: idleDir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, APIAddr: "-", LoopbackOnly: true, EnableDHT: true,
		Messenger: messenger.Config{MailboxHosts: hostAddrs}})
	if err != nil {
		return r, err
	}
	listen := me.P2P.Addrs()[0]
	listen = listen[:strings.Index(listen, "/p2p/")]
	closeMe := func() {
		if me != nil {
			me.Close()
			me = nil
		}
	}
	defer closeMe()
	benchLogf(o.Log, "adding contacts, groups and channels")
	var names []string
	for _, n := range world {
		link, err := n.Messenger.Invite(ctx)
		if err != nil {
			return r, err
		}
		c, err := me.Messenger.AddContact(ctx, link, "")
		if err != nil {
			return r, err
		}
		names = append(names, c.Name)
		back, err := me.Messenger.Invite(ctx)
		if err != nil {
			return r, err
		}
		if _, err := n.Messenger.AddContact(ctx, back, ""); err != nil {
			return r, err
		}
	}
	// A message each way with every contact: sessions are set up (the
	// idle node has nothing left to say).
	for i, n := range world {
		if _, err := me.Messenger.Send(ctx, names[i], "hello"); err != nil {
			return r, err
		}
		if _, err := n.Messenger.Send(ctx, "idle", "hello back"); err != nil {
			return r, err
		}
	}
	for g := range groups {
		gi, err := me.Messenger.CreateGroup(ctx, fmt.Sprintf("group %d", g))
		if err != nil {
			return r, err
		}
		for k := range perGroup {
			if _, err := me.Messenger.GroupAdd(ctx, gi.ID, names[(g*perGroup+k)%contacts]); err != nil {
				return r, err
			}
			kind[(g*perGroup+k)%contacts] = "group members"
		}
		if _, err := me.Messenger.GroupSend(ctx, gi.ID, "the group's first message"); err != nil {
			return r, err
		}
	}
	for c := range channels {
		owner := world[contacts-1-c]
		kind[contacts-1-c] = "channel owners"
		ci, err := owner.Messenger.CreateChannel(ctx, fmt.Sprintf("channel %d", c), false)
		if err != nil {
			return r, err
		}
		if _, err := owner.Messenger.Post(ctx, ci.ID, "the channel's first post", false); err != nil {
			return r, err
		}
		link, err := owner.Messenger.ChannelInvite(ctx, ci.ID)
		if err != nil {
			return r, err
		}
		if _, err := me.Messenger.FollowChannel(ctx, link); err != nil {
			return r, err
		}
	}
	// Everything sent is delivered before the node goes idle.
	if err := waitQuiet(ctx, append([]*Node{me}, world...), 2*time.Minute); err != nil {
		return r, err
	}
	closeMe()
	var peers []idlePeer
	for i, n := range world {
		k := kind[i]
		switch {
		case i < hosts:
			k = "mailbox hosts"
		case k == "":
			k = "other contacts"
		}
		peers = append(peers, idlePeer{kind: k, port: tcpPort(n.P2P.Addrs()[0]), mailbox: i < hosts})
	}
	args := []string{"--profile", idleDir, "up", "--listen", listen, "--api", "127.0.0.1:0", "--mesh=false", "--mdns=false", "--log-level", "warn"}
	r, err = measureIdle(ctx, r, o, idleDir, args, tcpPort(listen), peers)
	for _, l := range r.Breakdown() {
		benchLogf(o.Log, "%s", l)
	}
	return r, err
}

// waitQuiet waits until no node has anything left in its outbox.
func waitQuiet(ctx context.Context, nodes []*Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		busy := 0
		for _, n := range nodes {
			q, err := n.Messenger.QueuedCount(ctx)
			if err != nil {
				return err
			}
			busy += q
		}
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d messages still queued after %v", busy, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling a condition
		}
	}
}

// RunIdleRelay measures an idle `samizdat relay` keeping 1,000 mailboxes
// (one envelope waiting in each; nobody fetching).
func RunIdleRelay(ctx context.Context, dir string, o IdleOptions) (IdleResult, error) {
	r := IdleResult{What: "relay (1,000 mailboxes)"}
	if err := o.defaults(); err != nil {
		return r, err
	}
	relayDir := filepath.Join(dir, "relay")
	// Filled by one depositor here; the relay measured runs with the
	// default limits.
	fill := MailboxOptions{RateLimit: mailbox.RateLimit{PerSecond: 1e6, Burst: 1e6}}
	rl, err := StartRelay(ctx, RelayOptions{Dir: relayDir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, LoopbackOnly: true, Mailbox: fill})
	if err != nil {
		return r, err
	}
	listen := rl.Addrs()[0]
	listen = listen[:strings.Index(listen, "/p2p/")]
	dep, err := p2p.New(ctx, p2p.Config{LoopbackOnly: true})
	if err != nil {
		rl.Close()
		return r, err
	}
	dep.AddAddrs(rl.PeerID(), rl.Addrs())
	benchLogf(o.Log, "depositing into 1,000 mailboxes")
	env := make([]byte, 1024)
	for i := range 1000 {
		k, err := mailbox.NewKey()
		if err == nil {
			_, _ = rand.Read(env)
			err = mailbox.Deposit(ctx, dep, rl.PeerID(), mailbox.KeyID(k), env)
		}
		if err != nil {
			dep.Close()
			rl.Close()
			return r, fmt.Errorf("deposit %d: %w", i, err)
		}
	}
	dep.Close()
	if err := rl.Close(); err != nil {
		return r, err
	}
	args := []string{"--profile", relayDir, "relay", "--listen", listen, "--log-level", "warn"}
	return measureIdle(ctx, r, o, relayDir, args, 0, nil)
}

// idlePeer is one peer of the idle node's world, for the breakdown: its
// kind, its listening TCP port, and whether it hosts the node's mailbox
// (fetched through throwaway hosts, from other ports than the node's).
type idlePeer struct {
	kind    string
	port    int
	mailbox bool
}

// tcpPort returns the TCP port of a multiaddr (0 if none).
func tcpPort(addr string) int {
	f := strings.Split(addr, "/")
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "tcp" {
			p, _ := strconv.Atoi(f[i+1])
			return p
		}
	}
	return 0
}

// measureIdle runs exe args under a fresh user id owning dir, lets it
// settle, then measures its CPU time and the bytes its sockets send over
// the window. With peers (and the node's own port), it also splits the
// bytes by the peers they went to, and reads the node's per-protocol
// stream bytes (benchbw.go).
func measureIdle(ctx context.Context, r IdleResult, o IdleOptions, dir string, args []string, ownPort int, peers []idlePeer) (IdleResult, error) {
	nb, err := rand.Int(rand.Reader, big.NewInt(20000))
	if err != nil {
		return r, err
	}
	uid := 40000 + int(nb.Int64())
	if err := chownTree(dir, uid); err != nil {
		return r, err
	}
	tag := fmt.Sprintf("samizdat-idle-bench-%d", uid)
	owner := []string{"OUTPUT", "-m", "owner", "--uid-owner", strconv.Itoa(uid)}
	rules := [][]string{append(slices.Clone(owner), "-m", "comment", "--comment", tag)}
	for i, p := range peers {
		rules = append(rules, append(slices.Clone(owner), "-p", "tcp", "--dport", strconv.Itoa(p.port),
			"-m", "comment", "--comment", fmt.Sprintf("%s-p%d", tag, i)))
		if p.mailbox && ownPort > 0 {
			rules = append(rules, append(slices.Clone(owner), "-p", "tcp", "--dport", strconv.Itoa(p.port), "!", "--sport", strconv.Itoa(ownPort),
				"-m", "comment", "--comment", fmt.Sprintf("%s-t%d", tag, i)))
		}
	}
	for _, rule := range rules {
		if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
			return r, fmt.Errorf("iptables: %v: %s", err, out)
		}
		defer exec.Command("iptables", append([]string{"-D"}, rule...)...).Run()
	}
	bwFile := filepath.Join(dir, "bench-bandwidth.json")

	cmd := exec.CommandContext(ctx, o.Exe, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if peers != nil {
		cmd.Env = append(cmd.Env, bandwidthEnv+"="+bwFile)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if err := cmd.Start(); err != nil {
		return r, err
	}
	// exited is closed once the process is reaped (waitErr then holds
	// its exit): both pause and the clean-up below wait on it, so an
	// early exit seen by pause must not leave the clean-up waiting for a
	// second value (it did: the suite's idle run hung with its iptables
	// rules in place).
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	pause := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("%s exited: %v\n%s", filepath.Base(o.Exe), waitErr, stderr.String())
		case <-time.After(d):
			return nil
		}
	}
	benchLogf(o.Log, "idle process %d up; settling %v, then measuring %v", cmd.Process.Pid, o.Settle, o.Window)
	if err := pause(o.Settle); err != nil {
		return r, err
	}
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	c0, err := ruleCounters(tag)
	if err != nil {
		return r, err
	}
	bw0 := readBandwidth(bwFile)
	t0 := time.Now()
	if err := pause(o.Window); err != nil {
		return r, err
	}
	cpu1, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	c1, err := ruleCounters(tag)
	if err != nil {
		return r, err
	}
	bw1 := readBandwidth(bwFile)
	r.Window = time.Since(t0)
	all0, ok0 := c0[tag]
	all1, ok1 := c1[tag]
	if !ok0 || !ok1 {
		return r, errors.New("iptables counting rule not found")
	}
	r.CPU, r.BytesSent = cpu1-cpu0, all1[1]-all0[1]
	scale := float64(time.Hour) / float64(r.Window)
	r.CPUPerHour = time.Duration(float64(r.CPU) * scale)
	r.BytesPerHour = float64(r.BytesSent) * scale
	r.PacketsPerMin = float64(all1[0]-all0[0]) * float64(time.Minute) / float64(r.Window)
	if peers != nil {
		r.ByPeer = peerShares(tag, peers, c0, c1, scale)
		r.ByProtocol = protocolShares(bw0, bw1, scale)
	}
	return r, nil
}

// peerShares sums the per-peer counters by kind of peer, per hour; what
// no peer rule counted (other destinations) is the rest of the total.
func peerShares(tag string, peers []idlePeer, c0, c1 map[string][2]int64, scale float64) []IdleShare {
	delta := func(t string) [2]int64 { return [2]int64{c1[t][0] - c0[t][0], c1[t][1] - c0[t][1]} }
	byKind := map[string]*IdleShare{}
	var order []string
	add := func(kind string, d [2]int64) {
		s := byKind[kind]
		if s == nil {
			s = &IdleShare{Name: kind}
			byKind[kind] = s
			order = append(order, kind)
		}
		s.Packets += float64(d[0]) * scale
		s.Bytes += float64(d[1]) * scale
	}
	rest := delta(tag)
	for i, p := range peers {
		d := delta(fmt.Sprintf("%s-p%d", tag, i))
		rest[0] -= d[0]
		rest[1] -= d[1]
		if p.mailbox {
			t := delta(fmt.Sprintf("%s-t%d", tag, i))
			add(p.kind+": throwaway hosts (mailbox traffic)", t)
			d[0] -= t[0]
			d[1] -= t[1]
		}
		add(p.kind, d)
	}
	add("other destinations", rest)
	out := make([]IdleShare, 0, len(order))
	for _, k := range order {
		out = append(out, *byKind[k])
	}
	return out
}

// protocolShares returns what the node's streams sent and received per
// hour by protocol between two readings, the largest senders first.
func protocolShares(bw0, bw1 map[string]p2p.StreamBytes, scale float64) []IdleShare {
	var out []IdleShare
	for p, b := range bw1 {
		a := bw0[p]
		if b.Out == a.Out && b.In == a.In {
			continue
		}
		name := p
		if name == "" {
			name = "(protocol not negotiated yet)"
		}
		out = append(out, IdleShare{Name: name, Bytes: float64(b.Out-a.Out) * scale, BytesIn: float64(b.In-a.In) * scale})
	}
	slices.SortFunc(out, func(a, b IdleShare) int { return cmp.Compare(b.Bytes, a.Bytes) })
	return out
}

// chownTree gives dir and everything in it to uid.
func chownTree(dir string, uid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
}

// procCPU reads a process's user + system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields after its ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, nil
}

// ruleCounters reads the packets and bytes of our OUTPUT rules, by the
// comment tag (tag, tag-p1, …).
func ruleCounters(tag string) (map[string][2]int64, error) {
	out, err := exec.Command("iptables", "-L", "OUTPUT", "-v", "-x", "-n").Output()
	if err != nil {
		return nil, err
	}
	m := map[string][2]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "/* "+tag)
		if i < 0 {
			continue
		}
		name, _, _ := strings.Cut(line[i+3:], " ")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		packets, err1 := strconv.ParseInt(f[0], 10, 64)
		sent, err2 := strconv.ParseInt(f[1], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		m[name] = [2]int64{packets, sent}
	}
	return m, nil
}
