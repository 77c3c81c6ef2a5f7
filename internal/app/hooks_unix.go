//go:build unix

package app

import (
	"os/exec"
	"syscall"
)

// killGroup makes the command a process group leader, killed with its
// children on timeout (a script that starts `sleep` must not leave it).
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
