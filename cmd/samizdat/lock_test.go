package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCLIUpRacesCommands is issue 13's `samizdat up &` followed at once by
// commands on the same profile: a loop runs `status` and `invite` (which
// open the profile offline while no node answers) as `up` starts. Before
// the fix the daemon died about one time in five ("the profile is in use
// by another samizdat process"). Now it must come up every time, 50
// times, and every command must succeed (offline before the node is up,
// through its API after).
func TestCLIUpRacesCommands(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts samizdat up 50 times")
	}
	p := newProfile(t, "racer")
	p.bin = plainBinary(t) // see plainBinary
	p.must("init", "--name", "racer", "--no-passphrase")
	const tries = 50
	online := 0
	for try := range tries {
		online += upRacingCommands(t, p, try)
	}
	// Both paths were taken: commands ran offline (racing the start) and
	// through the node's API.
	t.Logf("%d tries; %d commands answered by the running node", tries, online)
	if online == 0 {
		t.Error("no command reached the running node")
	}
}

// upRacingCommands starts `up` while commands run in a loop, waits for the
// node's API, lets one more command go through it, and stops the node.
// It returns how many commands the running node answered.
func upRacingCommands(t *testing.T, p *profile, try int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	online := 0
	loopStarted := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		after := -1 // commands left once the node answered
		for i := 0; after != 0; i++ {
			if i == 0 {
				close(loopStarted) // up starts with the first command
			}
			select {
			case <-stop:
				if after < 0 {
					after = 1
				}
			default:
			}
			args := []string{"status", "--json"}
			if i%2 == 1 {
				args = []string{"invite"}
			}
			out, errOut, code := p.run(args...)
			mu.Lock()
			if code != 0 {
				failures = append(failures, fmt.Sprintf("%s: exit %d: %s", strings.Join(args, " "), code, errOut))
			} else if args[0] == "status" && strings.Contains(out, `"running": true`) {
				online++
			}
			mu.Unlock()
			if after > 0 {
				after--
			}
		}
	}()
	<-loopStarted

	cmd := exec.CommandContext(ctx, p.exe(), "--profile", p.dir, "up", "--dht=false", "--listen", "/ip4/127.0.0.1/tcp/0")
	cmd.Env = append(os.Environ(), "SAMIZDAT_PROFILE=", "SAMIZDAT_PASSPHRASE=")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	api := filepath.Join(p.dir, "api.json")
	for up := false; !up; {
		if _, err := os.Stat(api); err == nil {
			up = true
			break
		}
		select {
		case err := <-done:
			close(stop)
			wg.Wait()
			t.Fatalf("try %d: samizdat up exited (%v) while commands ran:\n%s", try, err, logs.String())
		case <-ctx.Done():
			t.Fatalf("try %d: samizdat up did not come up:\n%s", try, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("try %d: samizdat up exited with %v after Ctrl-C:\n%s", try, err, logs.String())
	}
	if len(failures) > 0 {
		t.Fatalf("try %d: commands failed while up started:\n%s", try, strings.Join(failures, "\n"))
	}
	return online
}

// TestCLISecondUpRefused: a second `up` on a profile whose node runs is
// refused at once (it does not wait like it does for a short command), and
// the first node keeps running.
func TestCLISecondUpRefused(t *testing.T) {
	t.Parallel()
	p := newProfile(t, "twice")
	p.must("init", "--name", "twice", "--no-passphrase")
	p.start("--dht=false", "--listen", "/ip4/127.0.0.1/tcp/0")
	p.fails("a samizdat node already runs on it", "up", "--dht=false", "--listen", "/ip4/127.0.0.1/tcp/0")
	if out := p.must("status", "--json"); !strings.Contains(out, `"running": true`) {
		t.Fatalf("status after the refused second up: %s", out)
	}
	select {
	case err := <-p.done:
		t.Fatalf("the first node exited: %v\n%s", err, p.log)
	default:
	}
}
