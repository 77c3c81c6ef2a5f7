package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// idleRSS starts this executable as `samizdat up` on a fresh profile,
// waits for it to settle and returns its resident set size in bytes.
func idleRSS(ctx context.Context, dir string) (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(filepath.Base(exe), "samizdat") || strings.HasSuffix(exe, ".test") {
		return 0, errors.New("only from the samizdat binary")
	}
	prof := filepath.Join(dir, "idle")
	if _, err := Init(ctx, prof, "idle", KeySource{NoPassphrase: true}); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, exe, "--profile", prof, "up", "--log-level", "warn")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	time.Sleep(5 * time.Second)
	return processRSS(cmd.Process.Pid)
}

// processRSS reads VmRSS from /proc.
func processRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}
