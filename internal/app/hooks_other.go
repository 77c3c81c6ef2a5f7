//go:build !unix

package app

import "os/exec"

// killGroup: elsewhere only the command itself is killed on timeout.
func killGroup(*exec.Cmd) {}
